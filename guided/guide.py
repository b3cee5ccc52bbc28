"""The guide as the trainer uses it: a sandboxed policy session (`llmrl.sandbox.session`) with a
record of its failures, its measured episodes (the data behaviour cloning learns from, the
return jump-start RL's curriculum aims at), and the guided evaluations on the curve.

A guide that fails during training (an exception, an invalid action, a time limit) does not stop
the run at once: the failure is counted and shown on the curve, the step falls back (the agent
acts; a residual adds to the centre of the action space) and the next call starts a fresh child.
After `max_failures` the run stops with the failures' messages. A guide that breaks the sandbox's
protocol stops the run at once: its actions can no longer be trusted."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from llmrl.envs.spec import EnvSpec
from llmrl.errors import GuideError
from llmrl.sandbox.session import PolicyFailed, PolicySession, PolicyTampered

log = logging.getLogger(__name__)


class FailureLog:
    """Failures of the guide over the run (kept in checkpoints by the method)."""

    restored_by_owner = True  # shared by every training env: not copied into their snapshots

    def __init__(self, limit: int, count: int = 0, messages: list[str] | None = None) -> None:
        self.limit, self.count, self.messages = limit, count, list(messages or [])

    def add(self, error: dict[str, Any], where: str) -> None:
        self.count += 1
        message = f"{where}: {error.get('kind', 'error')}: {error['message']}"
        if len(self.messages) < 5:
            self.messages.append(message)
        log.warning("the guide failed (%d of at most %d): %s", self.count, self.limit, message)
        if self.count > self.limit:
            raise GuideError(f"the guide policy failed {self.count} times, more than method.max_guide_failures={self.limit}; "
                             f"the run stops here (its curve and last checkpoint stand). First failures: "
                             f"{' | '.join(self.messages)}. Fix the guide (method.guide_policy) or raise the limit.")


class GuideActor:
    """`act(obs)`: the guide's action, or None when it failed on this observation."""

    restored_by_owner = True

    def __init__(self, session: PolicySession, failures: FailureLog, where: str) -> None:
        self.session, self.failures, self.where = session, failures, where

    def new_episode(self) -> None:
        try:
            self.session.new_episode()
        except PolicyTampered as exc:
            raise tampered(exc, self.where) from None
        except PolicyFailed as exc:
            self.failures.add(exc.error, self.where)

    def act(self, obs: Any) -> Any:
        try:
            return self.session.act(obs)
        except PolicyTampered as exc:
            raise tampered(exc, self.where) from None
        except PolicyFailed as exc:
            self.failures.add(exc.error, self.where)
            return None


def tampered(exc: PolicyTampered, where: str) -> GuideError:
    return GuideError(f"the guide policy broke the sandbox's protocol {where} ({exc.error['message']}); its actions cannot "
                      f"be trusted, so the run stops here (its curve and last checkpoint stand)")


@dataclass
class GuideEpisodes:
    """The guide's measured episodes on training seeds (every step counted)."""

    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    starts: list[bool] = field(default_factory=list)   # True at an episode's first step
    terminals: list[bool] = field(default_factory=list)  # True where the env terminated (not truncated) after the step
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    final_obs: list[np.ndarray] = field(default_factory=list)  # the observation after each episode's last step
    successes: list[float] = field(default_factory=list)       # max of info[success_key] per episode, where defined

    def arrays(self) -> dict[str, np.ndarray]:
        return {"obs": np.asarray(self.obs), "actions": np.asarray(self.actions), "rewards": np.asarray(self.rewards, dtype=np.float64),
                "starts": np.asarray(self.starts, dtype=bool), "terminals": np.asarray(self.terminals, dtype=bool),
                "returns": np.asarray(self.returns, dtype=np.float64), "lengths": np.asarray(self.lengths, dtype=np.int64),
                "final_obs": np.asarray(self.final_obs)}


def measure(spec: EnvSpec, session: PolicySession, seeds: list[int], counter) -> GuideEpisodes:
    """The guide's episodes on a counted training env, one per seed, with the env's own reward.
    A failure here stops the run before any training: a guide that cannot finish its own episodes
    is no guide."""
    data = GuideEpisodes()
    env = spec.make(seed=seeds[0], counter=counter)
    try:
        for k, seed in enumerate(seeds):
            obs, _ = env.reset(seed=seed)
            session.new_episode()
            total, length, done, success = 0.0, 0, False, 0.0
            while not done:
                try:
                    action = session.act(obs)
                except PolicyTampered as exc:
                    raise tampered(exc, f"while it was measured (episode {k + 1})") from None
                except PolicyFailed as exc:
                    output = session.output()
                    raise GuideError(f"the guide policy failed while it was measured, before any training (episode "
                                     f"{k + 1} of {len(seeds)}): {exc.error['kind']}: {exc.error['message']}"
                                     f"{' | ' + exc.error['traceback'].strip() if exc.error.get('traceback') else ''}"
                                     f"{' | it printed: ' + output[-300:] if output else ''}; fix the guide "
                                     f"(check it with scripts/evaluate_policy.py)") from None
                data.obs.append(np.array(obs, copy=True))
                data.actions.append(np.array(action, copy=True))
                data.starts.append(length == 0)
                obs, reward, terminated, truncated, info = env.step(action)
                if spec.success_key is not None:
                    success = max(success, float(info.get(spec.success_key, 0.0)))
                data.rewards.append(float(reward))
                data.terminals.append(bool(terminated))
                total += float(reward)
                length += 1
                done = terminated or truncated
            data.returns.append(total)
            data.lengths.append(length)
            data.final_obs.append(np.array(obs, copy=True))
            data.successes.append(success)
    finally:
        env.close()
    return data


def jump_started_returns(spec: EnvSpec, seeds: list[int], guide: GuideActor, agent: Callable[[Any], Any], h: int) -> list[float]:
    """Held-out returns (uncounted env, eval seeds) of jump-start's mixed policy: the guide for the
    first `h` steps of each episode, the greedy agent after (and wherever the guide failed)."""
    env = spec.make(seed=seeds[0])
    out = []
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            guide.new_episode()
            total, t, done = 0.0, 0, False
            while not done:
                action = guide.act(obs) if t < h else None
                obs, reward, terminated, truncated, _ = env.step(agent(obs) if action is None else action)
                total += float(reward)
                t += 1
                done = terminated or truncated
            out.append(total)
    finally:
        env.close()
    return out
