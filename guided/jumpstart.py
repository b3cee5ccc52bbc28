"""Jump-start RL (Uchendu et al., ICML 2023): the guide acts for the first h steps of every
training episode, the agent from step h to the end; h follows a curriculum that hands the
agent more of each episode once the mixed policy does as well as the guide.

The roll-in happens inside `reset`, in the same counted env (its steps are on the curve's
x-axis like every other step): the agent's episode starts at the state the guide reached, with
the time limit already h steps on. An episode the guide itself ends (a fall, the time limit)
before step h goes back to a plain reset, and the agent plays that next episode from step 0."""
from __future__ import annotations

import logging
from collections import deque
from typing import Any

import gymnasium as gym

from guided.replay import store

log = logging.getLogger(__name__)


class Curriculum:
    """JSRL's curriculum over h: h_k = round(h0 * (n - k) / n) for stages k = 1..n (the last is 0,
    the agent alone). The stage moves on when the mean full return (the guide's part and the
    agent's) of the last `window` training episodes played at the current h reaches
    `guide_return - tolerance * |guide_return|`. Training episodes only: the held-out evaluation
    seeds never decide anything."""

    restored_by_owner = True  # shared by every training env: saved by the method, not in their snapshots

    def __init__(self, h0: int, stages: int, tolerance: float, window: int, guide_return: float, stage: int = 0,
                 recent: list[float] | None = None) -> None:
        self.h_values = [int(round(h0 * (stages - k) / stages)) for k in range(1, stages + 1)]
        self.tolerance, self.window, self.guide_return = tolerance, window, float(guide_return)
        self.stage = min(int(stage), len(self.h_values) - 1)
        self.recent: deque[float] = deque(recent or [], maxlen=window)
        self.guide_only = 0  # episodes the guide ended before the agent's turn

    @property
    def h(self) -> int:
        return self.h_values[self.stage]

    @property
    def threshold(self) -> float:
        return self.guide_return - self.tolerance * abs(self.guide_return)

    def record(self, stage: int, full_return: float) -> None:
        if stage != self.stage or self.stage == len(self.h_values) - 1:
            return
        self.recent.append(float(full_return))
        if len(self.recent) == self.window and sum(self.recent) / self.window >= self.threshold:
            self.stage += 1
            self.recent.clear()
            log.info("jump-start curriculum: stage %d of %d, the guide now acts for %d steps", self.stage + 1,
                     len(self.h_values), self.h)

    def state(self) -> dict[str, Any]:
        return {"stage": self.stage, "recent": list(self.recent), "guide_only": self.guide_only}


class JumpStart(gym.Wrapper):
    """One training env with the guide's roll-in (under the Monitor: SB3 sees only the agent's part)."""

    def __init__(self, env: gym.Env, guide, curriculum: Curriculum, counter=None, stop_at: int | None = None) -> None:
        super().__init__(env)
        self.guide, self.curriculum = guide, curriculum
        self.counter, self.stop_at = counter, stop_at  # a roll-in ends where the run's budget does
        self.rollin_return, self.agent_return, self.stage = 0.0, 0.0, 0
        self.keep_transitions = False  # an off-policy learner takes the roll-in's transitions too (JSRL's data flow)
        self.transitions: list[tuple] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.stage = self.curriculum.stage
        self.guide.new_episode()
        total, t = 0.0, 0
        while t < self.curriculum.h and (self.stop_at is None or self.counter.steps < self.stop_at):
            action = self.guide.act(obs)
            if action is None:  # the guide failed: the agent takes over here
                break
            before = obs
            obs, reward, terminated, truncated, info = self.env.step(action)
            if self.keep_transitions:
                self.transitions.append((before, action, float(reward), obs, bool(terminated), bool(truncated)))
            total += float(reward)
            t += 1
            if terminated or truncated:
                self.curriculum.guide_only += 1
                obs, info = self.env.reset()
                total, self.stage = 0.0, -1  # the agent plays this one from step 0: not a return at h
                break
        self.rollin_return, self.agent_return = total, 0.0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.agent_return += float(reward)
        if terminated or truncated:
            self.curriculum.record(self.stage, self.rollin_return + self.agent_return)
        return obs, reward, terminated, truncated, info


def drain_into_replay(model, layers: list[JumpStart]) -> int:
    """Move the roll-ins' transitions into SAC's replay buffer (one training env)."""
    added = 0
    for layer in layers:
        if layer.transitions:
            obs, actions, rewards, next_obs, terminated, truncated = (list(x) for x in zip(*layer.transitions))
            added += store(model, obs, next_obs, actions, rewards, terminated, truncated)
            layer.transitions.clear()
    return added
