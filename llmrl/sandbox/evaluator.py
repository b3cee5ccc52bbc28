"""The trusted side of one sandbox worker. It owns the environment, the reward computation, the
step counter and the returns; the LLM-written policy runs in a child of the sandboxed warm parent
(`llmrl.sandbox.zygote`) and only ever sees copies of observations and sends back actions, over
pipes (`llmrl.sandbox.protocol`). Nothing the policy does to its own process can reach the env
or a score, and every time limit is enforced here, from outside the policy's process.

Jobs arrive from the host as JSON lines on stdin; results leave as JSON lines on stdout.

    python -m llmrl.sandbox.evaluator SETTINGS_JSON
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

import numpy as np

from llmrl.envs.spec import EnvSpec
from llmrl.procs import die_with_parent
from llmrl.sandbox import launch
from llmrl.sandbox.actions import InvalidAction, WireError, decoder, space_spec
from llmrl.sandbox.protocol import (ACTION_BOX, ACTION_INT, EPISODE, ERROR, JOB, MAX_CHILD_FRAME, READY, SUMMARY, Channel,
                                    ChannelClosed, ChannelTimeout, FrameTooLarge, ObservationCodec)

ERROR_KINDS = {"exception", "invalid_action", "memory", "output", "syntax", "no_class", "crash"}
KILL_GRACE_S = 3.0      # how long the warm parent may take to confirm a child is gone before the sandbox is restarted
START_TIMEOUT_S = 120.0


class Tampering(Exception):
    """The child broke the protocol: its result cannot be trusted."""


class SandboxBroken(Exception):
    """The warm parent stopped answering or died: restart it."""


class WarmParent:
    """The sandboxed warm parent of this worker and the control socket to it."""

    def __init__(self, settings: dict[str, Any], workdir: str) -> None:
        self.settings = settings
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self.restarts = -1
        self.identity: dict[str, Any] = {}
        self.scratch: str | None = None  # without bubblewrap: the scratch root on the host

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.stop()
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mode, uid = self.settings["mode"], int(self.settings["uid"])
        drop = uid if os.getuid() == 0 else -1
        if mode == "bwrap":
            scratch = launch.SCRATCH_IN_SANDBOX
            cmd = ["bwrap", *launch.bwrap_args(int(self.settings["scratch_mb"]), os.getuid() == 0),
                   *launch.python_command(child_end.fileno(), scratch, drop)]
            env, cwd = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, "/"
        else:
            # the unprivileged uid must reach its scratch: a directory of its own in the system's temp dir
            scratch = tempfile.mkdtemp(prefix="llmrl-sandbox-", dir=None if drop >= 0 else self.workdir)
            if drop >= 0:
                os.chown(scratch, drop, drop)
            self.scratch = scratch
            cmd = launch.python_command(child_end.fileno(), scratch, drop)
            env, cwd = launch.environment(scratch), launch.PROJECT_ROOT
        log = open(os.path.join(self.workdir, "warm_parent.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=cwd,
                                     pass_fds=[child_end.fileno()], preexec_fn=self._preexec())
        log.close()
        child_end.close()
        self.control = parent_end
        self.restarts += 1
        hello = self._receive(time.monotonic() + START_TIMEOUT_S)
        if hello is None or hello.get("op") != "hello":
            tail = _tail(os.path.join(self.workdir, "warm_parent.log"))
            self.stop()
            raise RuntimeError(f"the sandbox's warm parent did not start: {tail or 'no output'}")
        self.identity = {"uid": hello["uid"], "gid": hello["gid"]}

    def _preexec(self):
        """In the new process: die with the evaluator, and run on the policy's core."""
        die = die_with_parent(signal.SIGKILL)
        cpu = self.settings.get("policy_cpu")

        def preexec() -> None:
            die()
            if cpu is not None:
                os.sched_setaffinity(0, {int(cpu)})

        return preexec

    def stop(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        assert self.control is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.control.settimeout(remaining)
        try:
            data = self.control.recv(1 << 16)
        except (socket.timeout, OSError):
            return None
        if not data:
            return None
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            return None

    def spawn(self, description: str, out: int, variables: dict[str, Any] | None = None) -> Channel:
        """A fresh child with new pipes (its printed output goes to `out`); the channel to it. `variables`
        fill the description's ${...} placeholders, as the env config's description_vars do."""
        if not self.alive():
            self.start()
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        try:
            socket.send_fds(self.control, [json.dumps({"op": "spawn", "description": description,
                                                            "variables": dict(variables or {})}).encode()],
                            [down_r, up_w, out])
            answer = self._receive(time.monotonic() + 30.0)
        except OSError as exc:
            answer, problem = None, str(exc)
        else:
            problem = (answer or {}).get("error") or "no answer"
        finally:
            os.close(down_r)
            os.close(up_w)
        if answer is None or answer.get("op") != "spawned":
            os.close(down_w)
            os.close(up_r)
            raise SandboxBroken(f"the warm parent did not start a child ({problem})")
        os.set_blocking(down_w, False)
        os.set_blocking(up_r, False)
        return Channel(up_r, down_w, max_frame=MAX_CHILD_FRAME, spin_s=float(self.settings.get("spin_s") or 0.0))

    def end(self, chan: Channel, kill: bool) -> int | None:
        """Close the channel (end of file tells a well-behaved child to return) and wait for the
        child to be gone; its wait status."""
        chan.close()
        return self.finish(kill)

    def finish(self, kill: bool) -> int | None:
        """Wait for the child to be gone (killing it first if asked); its wait status, or None
        when the warm parent did not confirm (it is then restarted, which ends the child too)."""
        if kill:
            try:
                self.control.send(b'{"op": "kill"}')
            except OSError:
                pass
        answer = self._receive(time.monotonic() + (KILL_GRACE_S if kill else 10.0))
        if answer is None and not kill:  # a child that does not end on its own is killed
            return self.finish(kill=True)
        if answer is None or answer.get("op") != "exited":
            self.stop()
            return None
        if not answer.get("clean", True):
            self.stop()  # something the child left could not be removed: the next child gets a new sandbox
        return int(answer["status"])


def _tail(path: str, n: int = 1500) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip()
    except OSError:
        return ""


class Evaluator:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.workdir = tempfile.mkdtemp(prefix="evaluator-", dir=settings.get("workdir"))
        self.parent = WarmParent(settings, self.workdir)
        self.envs: dict[str, Any] = {}

    def env_for(self, spec: dict[str, Any]):
        key = json.dumps(spec, sort_keys=True)
        if key not in self.envs:
            env_spec = EnvSpec(**spec)
            env = env_spec.make()
            description = env_spec.describe()
            description.observation_class, description.reward_fn  # noqa: B018 - load both now
            self.envs[key] = (env, description, space_spec(env.action_space), decoder(env.action_space))
        return self.envs[key]

    # ---- one job -------------------------------------------------------------------------------
    def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        if job.get("warm_only"):
            self.env_for(job["env"])
            if not self.parent.alive():
                self.parent.start()
            return {"ok": True, "warm": True, "sandbox_uid": self.parent.identity.get("uid")}
        started = time.monotonic()
        restarts = self.parent.restarts
        out = None
        result: dict[str, Any] = {"ok": False, "error": None, "returns": [], "env_returns": [], "successes": [],
                                  "lengths": [], "steps": 0, "feedback": None, "feedback_error": None, "notes": {}}
        try:
            env, description, action_spec, decode_action = self.env_for(job["env"])
            out = os.memfd_create("job-output", os.MFD_CLOEXEC)
            if job.get("summarize"):  # a Feedback class on trajectories the host kept (no env step)
                trajectories = [[np.asarray(o) for o in episode] for episode in job["trajectories"]]
            else:
                trajectories = self._rollouts(job, env, description, action_spec, decode_action, result, started, out)
                if job.get("keep_trajectories"):
                    result["trajectories"] = [[o.tolist() if isinstance(o, np.ndarray) else o for o in t] for t in trajectories]
            if job.get("feedback_source") and trajectories:
                self._feedback(job, description, trajectories, result, started, out)
        except SandboxBroken as exc:
            self.parent.stop()
            result["error"] = result["error"] or {"kind": "crash", "message": f"the sandbox failed: {exc}; it is "
                                                  f"restarted for the next evaluation", "traceback": ""}
        finally:
            if out is not None:
                result["output"] = _read_output(out, int(job["caps"]["output_chars"]))
                os.close(out)
        if result["successes"] is not None and job["env"].get("success_key") is None:
            result["successes"] = None
        result["ok"] = result["error"] is None
        result["wall_s"] = round(time.monotonic() - started, 4)
        if self.parent.restarts > max(restarts, 0):
            result["notes"]["sandbox_restarted"] = True
        result["sandbox_uid"] = self.parent.identity.get("uid")
        return result

    def _rollouts(self, job, env, description, action_spec, decode_action, result, started, out) -> list[dict[str, Any]]:
        """The episodes, stepped here; the child only maps observations to actions."""
        limits, caps = job["limits"], job["caps"]
        job_deadline = started + float(limits["job_timeout_s"])
        act_limit, episode_limit = float(job["act_timeout_s"]), float(job["episode_timeout_s"])
        # described returns where the description's reward is code; where it is words, the env's
        described = job.get("returns", "described") == "described" and description.reward_fn is not None
        success_key = job["env"].get("success_key")
        keep = bool(job.get("feedback_source") or job.get("keep_trajectories"))
        wrap, reward_fn = description.observation_class, description.reward_fn
        codec = ObservationCodec()
        seeds = [int(s) for s in job["seeds"]]
        obs, info = env.reset(seed=seeds[0])
        # the reference's MuJoCo observation objects also carry the simulator state: it rides along
        with_state = job.get("interface") == "reference" and job["env"].get("reference_state") == "mujoco"
        view = _with_mujoco_state(env) if with_state else (lambda o: o)
        split = [int(np.size(obs)), int(env.unwrapped.data.qpos.size), int(env.unwrapped.data.qvel.size)] if with_state else None
        chan = self.parent.spawn(description.name, out, dict(description.variables))
        trajectories: list[dict[str, Any]] = []
        steps, kill = 0, True
        try:
            chan.send_pickle(JOB, {"kind": "policy", "policy_source": job["policy_source"], "class_name": job.get("class_name"),
                                   "action_space": action_spec, "obs_meta": codec.announce(view(obs)), "limits": limits,
                                   "rng_seed": int(job.get("rng_seed", 0)), "spin_s": chan.spin_s, "env": job["env"],
                                   "interface": job.get("interface", "ours"), "obs_split": split}, job_deadline)
            ready = self._expect(chan, READY, min(job_deadline, time.monotonic() + float(job["init_timeout_s"])), caps,
                                 f"defining or constructing the policy took longer than {job['init_timeout_s']} s "
                                 f"(is there an infinite loop in __init__?)")
            result["notes"].update(ready.get("notes") or {} if isinstance(ready, dict) else {})
            recv, send = chan.recv, chan.send
            for episode, seed in enumerate(seeds):
                if episode:
                    obs, info = env.reset(seed=seed)
                total = env_total = success = 0.0
                length = 0
                traj = [_copy(obs)] if keep else None  # the observations the policy acts on, in order
                prev = wrap(obs) if described else None
                episode_deadline = min(job_deadline, time.monotonic() + episode_limit)
                send(EPISODE, b"", job_deadline)
                send(*codec.encode(view(obs)), job_deadline)
                sent_at = time.monotonic()
                done = False
                while not done:
                    try:
                        kind, payload = recv(min(sent_at + act_limit, episode_deadline))
                    except ChannelTimeout:
                        now = time.monotonic()
                        if now >= job_deadline:
                            what = f"the evaluation exceeded its wall-clock limit of {limits['job_timeout_s']} s"
                        elif now >= episode_deadline:
                            what = f"an episode took longer than {episode_limit:g} s (step {length} of episode {episode + 1})"
                        else:
                            what = f"one act() call took longer than {act_limit:g} s (step {length} of episode {episode + 1})"
                        raise Failure({"kind": "timeout", "message": f"{what}; make act() faster or avoid infinite loops "
                                        f"(the policy's process was killed from outside)", "traceback": ""}) from None
                    action = checked_action(kind, payload, decode_action, caps, length, episode + 1)
                    try:
                        next_obs, env_reward, terminated, truncated, info = env.step(action)
                    except Exception as exc:  # e.g. MuJoCo's instability check, after an extreme action
                        raise Failure({"kind": "env_error", "message": f"the environment raised "
                                        f"{type(exc).__name__}: {str(exc)[:300]} at step {length} of episode "
                                        f"{episode + 1}, after the action {np.asarray(action).tolist()}",
                                        "traceback": ""}) from None
                    steps += 1
                    length += 1
                    done = terminated or truncated
                    if not done:  # the child works on the next action while the reward is computed here
                        send(*codec.encode(view(next_obs)), job_deadline)
                        sent_at = time.monotonic()
                    env_total += env_reward
                    if described:
                        nxt = wrap(next_obs)
                        total += reward_fn(prev, action, nxt, info)
                        prev = nxt
                    else:
                        total += env_reward
                    if success_key is not None:
                        success = max(success, float(info.get(success_key, 0.0)))
                    if keep and not done:
                        traj.append(_copy(next_obs))
                result["returns"].append(float(total))
                result["env_returns"].append(float(env_total))
                result["lengths"].append(length)
                result["successes"].append(success)
                if keep:
                    trajectories.append(traj)
            kill = False
        except Failure as failure:
            result["error"], kill = failure.error, failure.killed
        except FrameTooLarge as exc:
            result["error"] = _tampering("the policy's process", exc)
        except ChannelClosed:  # the child died (or closed its end)
            result["error"] = _death_message(self.parent.end(chan, kill=False), job["limits"])
            chan = None
        except Tampering as exc:
            result["error"] = _tampering("the policy's process", exc)
        finally:
            result["steps"] = steps  # the steps of an episode cut short count too
            if chan is not None:
                self.parent.end(chan, kill)
        return trajectories

    def _expect(self, chan: Channel, kind: int, deadline: float, caps: dict[str, Any], timeout_message: str) -> Any:
        try:
            got, payload = chan.recv(deadline)
        except ChannelTimeout:
            raise Failure({"kind": "timeout", "message": timeout_message, "traceback": ""}) from None
        if got == ERROR:
            raise Failure(_child_error(payload, caps), killed=False)
        if got != kind:
            raise Tampering(f"an unexpected frame of kind {got} instead of {chr(kind)}")
        return _json(payload)

    def _feedback(self, job, description, trajectories, result, started, out) -> None:
        """The LLM's Feedback class reads copies of the trajectories in a child of its own."""
        caps, limits = job["caps"], job["limits"]
        per_call = float(job["init_timeout_s"])
        chan = self.parent.spawn(description.name, out, dict(description.variables))
        kill = True
        try:
            chan.send_pickle(JOB, {"kind": "feedback", "feedback_source": job["feedback_source"], "trajectories": trajectories,
                                   "env": job["env"],
                                   "limits": limits, "rng_seed": int(job.get("rng_seed", 0)),
                                   "max_summary_chars": int(caps["summary_chars"])}, time.monotonic() + per_call)
            self._expect(chan, READY, time.monotonic() + per_call, caps,
                         f"defining the Feedback class took longer than {per_call:g} s")
            summaries = []
            for _ in trajectories:
                text = self._expect(chan, SUMMARY, time.monotonic() + per_call, caps,
                                    f"summarize_trajectory took longer than {per_call:g} s")
                summaries.append(str(text)[: int(caps["summary_chars"])])
            result["feedback"] = summaries
            kill = False
        except Failure as failure:
            result["feedback_error"], kill = failure.error, failure.killed
        except FrameTooLarge as exc:
            result["feedback_error"] = _tampering("the Feedback class's process", exc)
        except ChannelClosed:
            result["feedback_error"] = _death_message(self.parent.end(chan, kill=False), limits)
            chan = None
        except Tampering as exc:
            result["feedback_error"] = _tampering("the Feedback class's process", exc)
        finally:
            if chan is not None:
                self.parent.end(chan, kill)


def checked_action(kind: int, payload: bytes, decode_action, caps: dict[str, Any], step: int, episode: int) -> Any:
    """The child's answer to one observation: an action inside the space, or the failure it
    stands for (its own error report, an invalid action, or a broken protocol)."""
    if kind != ACTION_INT and kind != ACTION_BOX:
        if kind == ERROR:
            raise Failure(_child_error(payload, caps), killed=False)
        raise Tampering(f"an unexpected frame of kind {kind} during episode {episode}")
    try:
        return decode_action(kind, payload)
    except InvalidAction as exc:
        raise Failure({"kind": "invalid_action", "message": f"invalid action at step {step} of episode {episode}: {exc}",
                        "traceback": ""}) from None
    except WireError as exc:
        raise Tampering(str(exc)) from None


class Failure(Exception):
    def __init__(self, error: dict[str, Any], killed: bool = True) -> None:
        super().__init__(error["message"])
        self.error, self.killed = error, killed


def _with_mujoco_state(env):
    """The observation followed by the full qpos, qvel and dt, for the reference interface."""
    data, dt = env.unwrapped.data, float(env.unwrapped.dt)

    def view(obs):
        return np.concatenate([np.asarray(obs, dtype=np.float64).ravel(), data.qpos, data.qvel, [dt]])

    return view


def _copy(obs: Any) -> Any:
    return obs.copy() if isinstance(obs, np.ndarray) else obs


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Tampering("a message that is not JSON") from None


def _child_error(payload: bytes, caps: dict[str, Any]) -> dict[str, Any]:
    """The child's own description of a failure: shape and size checked, kinds from a fixed list."""
    data = _json(payload)
    if not isinstance(data, dict):
        raise Tampering("an error report that is not an object")
    kind = data.get("kind") if data.get("kind") in ERROR_KINDS else "exception"
    return {"kind": kind, "message": str(data.get("message", ""))[: int(caps["message_chars"])],
            "traceback": str(data.get("traceback", ""))[-int(caps["traceback_chars"]):]}


def _read_output(fd: int, cap: int) -> str:
    try:
        return os.pread(fd, cap * 4, 0).decode(errors="replace")[:cap]
    except OSError:
        return ""


def _tampering(who: str, exc: Exception) -> dict[str, Any]:
    return {"kind": "tampering", "message": f"{who} broke the sandbox protocol ({exc}); its result is discarded as "
            f"tampering", "traceback": ""}


def _death_message(status: int | None, limits: dict[str, Any]) -> dict[str, Any]:
    if status is None:  # the warm parent itself is gone: nothing a policy may do
        return {"kind": "tampering", "message": "the sandbox's warm parent died during the evaluation (killed from inside "
                "the sandbox?); the result is discarded as tampering", "traceback": ""}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return {"kind": "cpu", "message": f"the policy used more than {limits['cpu_s']} s of CPU time", "traceback": ""}
        if sig == signal.SIGSYS:
            return {"kind": "crash", "message": "the policy made a system call the sandbox forbids and was killed",
                    "traceback": ""}
        return {"kind": "crash", "message": f"the policy process died from signal {signal.Signals(sig).name} "
                f"(e.g. a crash in native code, exhausted memory, or the code killed itself)", "traceback": ""}
    return {"kind": "crash", "message": "the policy process exited without reporting a result (did the code call "
            "os._exit or sys.exit, or close its channel?)", "traceback": ""}


def main() -> None:
    settings = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when this process ends
    if settings.get("evaluator_cpu") is not None:  # see llmrl.sandbox.host.place
        os.sched_setaffinity(0, {int(settings["evaluator_cpu"])})
    evaluator = Evaluator(settings)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            try:
                result = evaluator.handle(job)
            except BaseException as exc:  # noqa: BLE001 - a broken job must not take the worker down
                evaluator.parent.stop()
                result = {"ok": False, "steps": 0, "error": {"kind": "crash", "message": f"sandbox failed to run the job: "
                          f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}}
            result["id"] = job.get("id")
            sys.stdout.write(json.dumps(result, default=_jsonable) + "\n")
            sys.stdout.flush()
    finally:
        evaluator.parent.stop()


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


if __name__ == "__main__":
    main()
