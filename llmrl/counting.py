"""The x-axis of every curve: one counter of environment steps shared by everything a method
runs (candidate rollouts, trajectory collection, RL updates). Evaluation steps are counted
apart and never added to it."""
from __future__ import annotations

import threading

import gymnasium as gym


class StepCounter:
    """A plain integer holder shared by reference between wrappers and the tracker."""

    def __init__(self, start: int = 0) -> None:
        self.steps = int(start)
        self._lock = threading.Lock()  # candidates are evaluated in parallel threads

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.steps += n

    def __deepcopy__(self, memo) -> "StepCounter":
        return self  # gymnasium deep-copies wrapper arguments (env.spec); the counter stays shared

    def __getstate__(self) -> dict:
        return {"steps": self.steps}

    def __setstate__(self, state: dict) -> None:
        self.steps = state["steps"]
        self._lock = threading.Lock()

    def __int__(self) -> int:
        return self.steps

    def __repr__(self) -> str:
        return f"StepCounter({self.steps})"


class CountSteps(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds one to the counter per `step`, whatever sits above it (vec envs, methods)."""

    def __init__(self, env: gym.Env, counter: StepCounter) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, counter=counter)
        gym.Wrapper.__init__(self, env)
        self.counter = counter

    def step(self, action):
        out = self.env.step(action)
        self.counter.add(1)
        return out
