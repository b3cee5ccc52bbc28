"""A mixed initial-state distribution (RICE, Cheng et al. 2024): each reset of a training env
starts, with probability `prob`, from a state drawn uniformly from a pool of snapshots
(critical states of the agent's own episodes, restored with `llmrl.envs.restore`), and
otherwise from the env's own initial distribution. prob = 1 is StateMask-R's "restart from
critical states"; the pool is empty until the method sets it, and then resets are plain."""
from __future__ import annotations

import itertools
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from llmrl.envs.restore import EnvSnapshot, family, restore


class CriticalStarts(gym.Wrapper):
    def __init__(self, env: gym.Env, prob: float, seed: int) -> None:
        super().__init__(env)
        family(env)  # RestoreUnsupported now, with the reason, rather than at the first reset
        self.prob = float(prob)
        self.rng = np.random.default_rng(seed)
        self.pool: list[EnvSnapshot] = []
        self.resets = 0
        self.pool_starts = 0

    def set_pool(self, pool: list[EnvSnapshot]) -> None:
        self.pool = list(pool)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.resets += 1
        if self.pool and self.rng.random() < self.prob:
            snap = self.pool[int(self.rng.integers(len(self.pool)))]
            obs, info = restore(self.env, snap)
            info = {**info, "critical_start": True}
            self.pool_starts += 1
        return obs, info


def check_restorable(spec, prob: float) -> None:
    """RestoreUnsupported now, with the reason, rather than at the first reset of a run."""
    probe = spec.make()
    try:
        CriticalStarts(probe, prob, 0)
    finally:
        probe.close()


def wrapper(prob: float, seed: int) -> Callable[[gym.Env], gym.Env]:
    """The env wrapper for a method's training envs: one CriticalStarts per env, each with a
    generator of its own."""
    count = itertools.count()
    return lambda env: CriticalStarts(env, prob, seed * 7919 + next(count))


def starts_of(venv) -> list[CriticalStarts]:
    """The CriticalStarts layers inside a (wrapped) DummyVecEnv's envs."""
    while hasattr(venv, "venv"):
        venv = venv.venv
    out = []
    for env in getattr(venv, "envs", []):
        while isinstance(env, gym.Wrapper):
            if isinstance(env, CriticalStarts):
                out.append(env)
                break
            env = env.env
    return out
