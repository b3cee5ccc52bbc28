"""A corridor with one known critical step, for testing explanations (StateMask, the LLM's
critical states, the fidelity measure) against ground truth. Each of `length` steps pays +1
whatever the action, except step `critical`: there action 1 goes on and action 0 ends the
episode with nothing more. Returns: `length` when step `critical` is passed, `critical` when it
is failed; randomising any other step changes nothing. The observation is (t / (length - 1),
1 if t == critical else 0), so the critical state is visible."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class CriticalStepEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, length: int = 20, critical: int = 10) -> None:
        if not 0 <= critical < length:
            raise ValueError(f"critical={critical} must lie in [0, {length})")
        self.length, self.critical = int(length), int(critical)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t / (self.length - 1), float(self.t == self.critical)], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"t": self.t}

    def step(self, action):
        failed = self.t == self.critical and int(action) == 0
        reward = 0.0 if failed else 1.0
        self.t += 1
        terminated = failed or self.t >= self.length
        return self._obs(), reward, terminated, False, {"t": self.t, "failed": failed}

    def get_state(self) -> dict:
        return {"t": self.t}

    def set_state(self, state: dict) -> None:
        self.t = int(state["t"])
