"""A policy written by an LLM (or by anyone) acting step by step in an environment that someone
else steps: the trainer of a hybrid method (jump-start RL, residual RL, behaviour cloning) owns
the env, the reward and the agent, and asks the policy for one action at a time.

The trainer's process plays the part the sandbox's evaluator plays for PromptPO's rollouts: it
starts its own sandboxed warm parent (bubblewrap where it works, `llmrl.sandbox.launch`), which
forks one hardened child for the policy; observations go down as copies, actions come back as
fixed-size binary frames checked against the action space. Nothing the policy does reaches the
trainer's env, its agent or its numbers, and every time limit is enforced from this side.

A failure (an exception in `act`, an invalid action, a time limit, a crash) raises
`PolicyFailed` with the sandbox's description of it; the child is gone by then and the next
`act` starts a fresh one (the same code, a new object). Breaking the protocol raises
`PolicyTampered`: its answers cannot be trusted any more, so nothing restarts it."""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmrl.envs.spec import EnvSpec
from llmrl.sandbox.actions import decoder, space_spec
from llmrl.sandbox.evaluator import (Failure, Tampering, WarmParent, _death_message, _read_output, _tampering,
                                    checked_action)
from llmrl.sandbox.host import SandboxSettings, choose_mode
from llmrl.sandbox.protocol import EPISODE, JOB, READY, ChannelClosed, ChannelTimeout, FrameTooLarge, ObservationCodec


class PolicyFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


class PolicyTampered(PolicyFailed):
    pass


class PolicySession:
    """`with PolicySession(source, env, settings, workdir) as guide: guide.act(obs)`.

    `env`: the env's config (as the sandbox's jobs take it), for the action space, the observation
    class and the reference interface; `rng_seed` seeds the child's generators (each restart adds
    one, so a replay draws the same numbers); `restart_every`: a child that has answered this many
    observations is replaced at the next episode boundary, so a long training run never reaches
    the sandbox's CPU-time limit (`sandbox.cpu_s`) through honest work."""

    def __init__(self, source: str, env: dict[str, Any], settings: SandboxSettings, workdir: Path,
                 class_name: str | None = None, rng_seed: int = 0, interface: str = "ours",
                 restart_every: int = 200_000) -> None:
        self.source, self.env, self.settings = source, dict(env), settings
        self.class_name, self.rng_seed, self.interface = class_name, int(rng_seed), interface
        self.restart_every = int(restart_every)
        spec = EnvSpec(**self.env)
        described = spec.describe()
        self.description, self.description_vars = described.name, dict(described.variables)
        space = spec.action_space()
        self.action_spec, self.decode = space_spec(space), decoder(space)
        self.mode, self.mode_reason = choose_mode(settings)
        Path(workdir).mkdir(parents=True, exist_ok=True)
        self.workdir = tempfile.mkdtemp(prefix="session-", dir=workdir)
        self.parent = WarmParent({"mode": self.mode, "uid": settings.uid, "scratch_mb": settings.scratch_mb,
                                  "workdir": self.workdir, "evaluator_cpu": None, "policy_cpu": None, "spin_s": 0.0},
                                 self.workdir)
        self.chan = None
        self.out: int | None = None
        self.codec = ObservationCodec()
        self.starts = 0          # children started (1 + restarts)
        self.answered = 0        # observations the current child answered
        self.steps = 0           # observations answered over the session
        self.episode, self.step = 0, 0
        self.tampered: dict[str, Any] | None = None

    def __enter__(self) -> "PolicySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.mode_reason, "children_started": self.starts, "actions": self.steps,
                "sandbox_uid": self.parent.identity.get("uid")}

    # ---- the policy's life --------------------------------------------------------------------
    def _start(self, obs: Any) -> None:
        s = self.settings
        self.out = os.memfd_create("guide-output", os.MFD_CLOEXEC)
        self.codec = ObservationCodec()
        self.chan = self.parent.spawn(self.description, self.out, self.description_vars)
        deadline = time.monotonic() + float(s.init_timeout_s)
        self.chan.send_pickle(JOB, {"kind": "policy", "policy_source": self.source, "class_name": self.class_name,
                                    "action_space": self.action_spec, "obs_meta": self.codec.announce(obs),
                                    "limits": s.limits(), "rng_seed": (self.rng_seed + self.starts) % 2**63, "spin_s": 0.0,
                                    "env": self.env, "interface": self.interface, "obs_split": None}, deadline)
        self.starts += 1
        self.answered = 0
        try:
            kind, payload = self.chan.recv(deadline)
        except ChannelTimeout:
            raise Failure({"kind": "timeout", "message": f"defining or constructing the policy took longer than "
                           f"{s.init_timeout_s} s (is there an infinite loop in __init__?)", "traceback": ""}) from None
        if kind != READY:
            checked_action(kind, payload, self.decode, asdict(s.caps), 0, self.episode)  # raises: an error or tampering
            raise Tampering("an action before the policy said it was ready")
        self.chan.send(EPISODE, b"", deadline)  # the child counts episodes from here, as in an evaluation

    def new_episode(self) -> None:
        """The next observation starts a new episode (the policy object is kept, as in PromptPO)."""
        self.episode, self.step = self.episode + 1, 0
        if self.chan is not None and self.answered >= self.restart_every:
            self._end(kill=False)
        if self.chan is not None:
            self._guarded(lambda: self.chan.send(EPISODE, b"", time.monotonic() + float(self.settings.act_timeout_s)))

    def act(self, obs: Any) -> Any:
        """The policy's action for one observation (a copy goes to the sandbox)."""
        if self.tampered is not None:
            raise PolicyTampered(self.tampered)

        def ask():
            if self.chan is None:
                self._start(obs)
            limit = float(self.settings.act_timeout_s)
            deadline = time.monotonic() + limit
            self.chan.send(*self.codec.encode(obs), deadline)
            try:
                kind, payload = self.chan.recv(deadline)
            except ChannelTimeout:
                raise Failure({"kind": "timeout", "message": f"one act() call took longer than {limit:g} s (step "
                               f"{self.step} of episode {self.episode + 1}); the policy's process was killed from outside",
                               "traceback": ""}) from None
            return checked_action(kind, payload, self.decode, asdict(self.settings.caps), self.step, self.episode + 1)

        action = self._guarded(ask)
        self.step += 1
        self.answered += 1
        self.steps += 1
        return action

    def _guarded(self, fn):
        """Run one exchange with the child; any failure ends the child and is raised as PolicyFailed."""
        try:
            return fn()
        except Failure as failure:
            self._end(kill=failure.killed)
            raise PolicyFailed(failure.error) from None
        except (FrameTooLarge, Tampering) as exc:
            self._end(kill=True)
            self.tampered = _tampering("the guide policy's process", exc)
            raise PolicyTampered(self.tampered) from None
        except ChannelClosed:
            status = self.parent.end(self.chan, kill=False)
            self.chan = None
            self._close_output()
            error = _death_message(status, self.settings.limits())
            if error["kind"] == "tampering":
                self.tampered = error
                raise PolicyTampered(error) from None
            raise PolicyFailed(error) from None

    def output(self, chars: int | None = None) -> str:
        """What the current child printed so far (capped like a candidate's output)."""
        return "" if self.out is None else _read_output(self.out, int(chars or self.settings.caps.output_chars))

    def _end(self, kill: bool) -> None:
        if self.chan is not None:
            self.parent.end(self.chan, kill)
            self.chan = None
        self._close_output()

    def _close_output(self) -> None:
        if self.out is not None:
            os.close(self.out)
            self.out = None

    def close(self) -> None:
        try:
            self._end(kill=False)
        finally:
            self.parent.stop()
