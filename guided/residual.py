"""Residual RL on a guide (Silver et al. 2018; Johannink et al. 2019): the env receives the
guide's action plus the agent's residual, clipped to the action space. The agent's action space
is a box centred on zero, `scale` times the env's half-range wide, and its action layer starts
at zero, so before the first update the policy is exactly the guide."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th


class Residual(gym.Wrapper):
    """One training (or evaluation) env whose actions are residuals on the guide's."""

    def __init__(self, env: gym.Env, guide, scale: float) -> None:
        super().__init__(env)
        space = env.action_space
        self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)
        half = (self.high - self.low) / 2.0 * float(scale)
        self.action_space = gym.spaces.Box(-half.astype(np.float32), half.astype(np.float32), dtype=np.float32)
        self.centre = (self.low + self.high) / 2.0
        self.guide = guide
        self.last_obs = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.guide.new_episode()
        self.last_obs = obs
        return obs, info

    def step(self, residual):
        obs, reward, terminated, truncated, info = self.env.step(self.combine(self.guide.act(self.last_obs), residual))
        self.last_obs = obs
        return obs, reward, terminated, truncated, info

    def combine(self, base, residual) -> np.ndarray:
        """The env's action: the guide's (its centre where the guide failed) plus the residual, clipped."""
        base = self.centre if base is None else np.asarray(base, dtype=np.float64)
        action = np.clip(base + np.asarray(residual, dtype=np.float64).reshape(base.shape), self.low, self.high)
        return action.astype(self.env.action_space.dtype)  # as the guide's own actions reach the env


def zero_action_layer(model) -> None:
    """The agent's deterministic action is 0 until it learns otherwise: PPO's Gaussian mean
    layer, SAC's pre-tanh mean layer (tanh(0) = 0, the centre of the symmetric box)."""
    layer = model.policy.action_net if hasattr(model.policy, "action_net") else model.actor.mu
    with th.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
