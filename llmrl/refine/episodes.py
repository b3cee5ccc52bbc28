"""Whole episodes of the current agent on a counted env: their steps are interactions with the
environment and appear on the curve. What each method keeps per step is up to it (`observe`:
ULTRA narrates, StateMask scores); `snapshots` keeps the env state before every action
(llmrl.envs.restore) so that an episode can later start from any of its states."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from llmrl.envs.restore import snapshot


@dataclass
class Rollout:
    index: int
    seed: int | None = None
    kept: list[Any] = field(default_factory=list)       # observe(obs, info) before each action
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)
    terminated: bool = False

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))


def run_episodes(spec, counter, act: Callable[[Any], Any], n: int, seed_base: int,
                 observe: Callable[[Any, dict], Any] | None = None, snapshots: bool = False) -> list[Rollout]:
    """`n` full episodes of `act` on one env (counted when `counter` is given), reset seeds
    seed_base, seed_base+1, ... (an episode is repeated exactly by its seed and actions)."""
    env = spec.make(seed=seed_base, counter=counter)
    out = []
    try:
        for e in range(n):
            obs, info = env.reset(seed=seed_base + e)
            ep = Rollout(index=e, seed=seed_base + e)
            done = False
            while not done:
                if snapshots:
                    ep.snapshots.append(snapshot(env, obs, info))
                if observe is not None:
                    ep.kept.append(observe(obs, info))
                action = act(obs)
                ep.actions.append(action)
                obs, reward, terminated, truncated, info = env.step(action)
                ep.rewards.append(float(reward))
                done = terminated or truncated
                ep.terminated = bool(terminated)
            out.append(ep)
    finally:
        env.close()
    return out
