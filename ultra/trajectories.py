"""Trajectories of the current agent for identification. The episodes run on counted envs:
their steps are interactions with the environment and appear on the curve."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from llmrl.refine.episodes import Rollout, run_episodes
from ultra.narration import Narrator


@dataclass
class Episode(Rollout):
    """A rollout as the LLM sees it: narrated states and actions, and the keys live states are
    matched on."""

    keys: list[np.ndarray] = field(default_factory=list)
    states: list[str] = field(default_factory=list)      # narrated state before each action
    action_texts: list[str] = field(default_factory=list)


def collect(spec, counter, act: Callable[[Any], Any], n: int, seed_base: int, narrator: Narrator,
            snapshots: bool = False) -> list[Episode]:
    """`n` full episodes of `act` on one counted env (seeds seed_base, seed_base+1, ...),
    narrated; `snapshots`: keep the env state before every action, to start from later."""
    rollouts = run_episodes(spec, counter, act, n, seed_base,
                            observe=lambda obs, info: (narrator.key(obs, info), narrator.describe_state(obs, info)),
                            snapshots=snapshots)
    return [Episode(index=r.index, keys=[k for k, _ in r.kept], states=[s for _, s in r.kept], actions=r.actions,
                    action_texts=[narrator.describe_action(a) for a in r.actions], rewards=r.rewards,
                    terminated=r.terminated, seed=r.seed, snapshots=r.snapshots) for r in rollouts]


def windows(length: int, size: int, max_windows: int) -> list[range]:
    """Coverage `sampled`: which steps of an episode go to the LLM. An episode longer than
    `size` steps is split into windows of `size` consecutive steps; at most `max_windows` are
    sent, spread evenly over the episode and always including the last one (where a failing
    episode fails)."""
    if length <= size:
        return [range(0, length)]
    count = min(max_windows, -(-length // size))
    if count == 1:  # one window: the end of the episode
        return [range(length - size, length)]
    starts = sorted({int(round(s)) for s in np.linspace(0, length - size, count)})
    return [range(s, s + size) for s in starts]


def tiles(line_chars: list[int], size: int, tokens_per_episode: int, chars_per_token: float = 2.5) -> tuple[list[range], int]:
    """Coverage `tiled`: windows that together show the whole episode. When the narration of
    every step (`line_chars`: characters per narrated step) exceeds `tokens_per_episode`, every
    k-th step is shown (k as small as fits; the last step always shown) and each window holds
    `size` shown steps. Returns the windows and k."""
    length = len(line_chars)
    tokens = sum(line_chars) / chars_per_token
    stride = max(1, int(np.ceil(tokens / tokens_per_episode)))
    first = (length - 1) % stride
    span = size * stride
    return [range(s, min(s + span, length), stride) for s in range(first, length, span)], stride
