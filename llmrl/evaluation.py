"""Held-out evaluation shared by every method: separate env instances, separate seeds, steps
reported but never counted as training interactions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from llmrl.envs.spec import EnvSpec


@dataclass
class EvalResult:
    returns: list[float]
    successes: list[float] | None
    lengths: list[int] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return int(sum(self.lengths))

    def point(self) -> dict[str, Any]:
        """The curve columns this evaluation fills."""
        return {
            "return_mean": float(np.mean(self.returns)),
            "return_std": float(np.std(self.returns)),
            "success_rate": float(np.mean(self.successes)) if self.successes is not None else None,
            "eval_episodes": len(self.returns),
        }


def run_episode(env, act: Callable[[Any], Any], seed: int, success_key: str | None) -> tuple[float, float | None, int]:
    """One episode; success is the max over the episode of `info[success_key]`."""
    obs, info = env.reset(seed=seed)
    total, success, steps = 0.0, 0.0, 0
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total += float(reward)
        steps += 1
        if success_key is not None:
            success = max(success, float(info.get(success_key, 0.0)))
        done = terminated or truncated
    return total, (success if success_key is not None else None), steps


def evaluate(spec: EnvSpec, act: Callable[[Any], Any], seeds: list[int],
             wrap: Callable[[Any], Any] | None = None) -> EvalResult:
    """Roll out `act` for one episode per seed on a fresh, uncounted env (`wrap`ped where the
    policy acts through a wrapper, e.g. a residual on a guide)."""
    env = spec.make(seed=seeds[0])
    env = wrap(env) if wrap is not None else env
    try:
        returns, successes, lengths = [], [], []
        for s in seeds:
            ret, succ, n = run_episode(env, act, s, spec.success_key)
            returns.append(ret)
            lengths.append(n)
            if succ is not None:
                successes.append(succ)
        return EvalResult(returns, successes if spec.has_success else None, lengths)
    finally:
        env.close()
