"""Trajectories of the current agent for identification. The episodes run on counted envs:
their steps are interactions with the environment and appear on the curve."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ultra.narration import Narrator


@dataclass
class Episode:
    index: int
    keys: list[np.ndarray] = field(default_factory=list)
    states: list[str] = field(default_factory=list)      # narrated state before each action
    actions: list[Any] = field(default_factory=list)
    action_texts: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))


def collect(spec, counter, act: Callable[[Any], Any], n: int, seed_base: int, narrator: Narrator) -> list[Episode]:
    """`n` full episodes of `act` on one counted env, seeds seed_base, seed_base+1, ..."""
    env = spec.make(seed=seed_base, counter=counter)
    episodes = []
    try:
        for e in range(n):
            obs, info = env.reset(seed=seed_base + e)
            ep = Episode(index=e)
            done = False
            while not done:
                action = act(obs)
                ep.keys.append(narrator.key(obs, info))
                ep.states.append(narrator.describe_state(obs, info))
                ep.actions.append(action)
                ep.action_texts.append(narrator.describe_action(action))
                obs, reward, terminated, truncated, info = env.step(action)
                ep.rewards.append(float(reward))
                done = terminated or truncated
                ep.terminated = bool(terminated)
            episodes.append(ep)
    finally:
        env.close()
    return episodes


def windows(length: int, size: int, max_windows: int) -> list[tuple[int, int]]:
    """Which [start, end) step ranges of an episode go to the LLM. An episode longer than
    `size` steps is split into windows of `size` consecutive steps; at most `max_windows` are
    sent, spread evenly over the episode and always including the last one (where a failing
    episode fails)."""
    if length <= size:
        return [(0, length)]
    count = min(max_windows, -(-length // size))
    starts = sorted({int(round(s)) for s in np.linspace(0, length - size, count)})
    return [(s, s + size) for s in starts]
