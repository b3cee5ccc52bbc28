"""The StateMask explanation: a mask network that learns, by PPO, when the agent's own action
can be replaced by a random one without lowering the return. Its action 1 keeps the agent's
action, 0 blinds it (a uniformly random action is executed instead); its reward is the env
reward plus `bonus` per blinded step (RICE's simplified objective). Once trained, the
probability of keeping is the step's importance: high where the agent's choice matters, low
where any action would do. The agent is fixed throughout; the mask's env steps are real
interactions (counted on the curve when a counter is given)."""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO

from llmrl.sb3 import hyperparams

# PPO settings for the mask network, overridable per run (method.mask_hparams)
MASK_DEFAULTS = {"n_steps": 512, "batch_size": 64, "n_epochs": 5, "learning_rate": 3e-4, "gamma": 0.99,
                 "gae_lambda": 0.95, "ent_coef": 0.0}


class MaskGame(gym.Wrapper):
    """The env as the mask network sees it: observations through `view` (the agent's own
    normalisation), a Discrete(2) action (0 blind, 1 keep), reward + bonus x blinded."""

    def __init__(self, env: gym.Env, agent: Callable[[Any], Any], view: Callable[[Any], np.ndarray], bonus: float,
                 seed: int) -> None:
        super().__init__(env)
        self.agent, self.view, self.bonus = agent, view, float(bonus)
        self.action_space = gym.spaces.Discrete(2)
        probe = view(env.observation_space.sample())
        if probe.ndim >= 3:
            self.observation_space = env.observation_space
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, probe.shape, np.float32)
        self.random_actions = env.action_space
        self.random_actions.seed(seed)
        self._obs = None
        self.blinded = 0
        self.steps = 0

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self.view(self._obs), info

    def step(self, keep):
        keep = int(np.asarray(keep).item())
        action = self.agent(self._obs) if keep else self.random_actions.sample()
        self._obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.blinded += 1 - keep
        return self.view(self._obs), float(reward) + self.bonus * (1 - keep), terminated, truncated, info


def train(spec, counter, agent: Callable[[Any], Any], view: Callable[[Any], np.ndarray], steps: int, bonus: float,
          seed: int, hparams: dict[str, Any] | None = None, device: str = "cpu") -> tuple[PPO, dict[str, float]]:
    """A mask network for `agent` on `spec`'s env, trained for `steps` env steps (rounded up
    to whole PPO rollouts of the mask)."""
    game = MaskGame(spec.make(seed=seed, counter=counter), agent, view, bonus, seed)
    hp = {**MASK_DEFAULTS, **(hparams or {})}
    policy = "CnnPolicy" if len(game.observation_space.shape) >= 3 else "MlpPolicy"
    model = PPO(policy, game, seed=seed, device=device, verbose=0, **hyperparams.to_sb3_kwargs(hp))
    model.learn(total_timesteps=steps, progress_bar=False)
    stats = {"mask_steps": game.steps, "blind_share": game.blinded / max(game.steps, 1)}
    game.close()
    return model, stats


def importance(mask: PPO, views: np.ndarray) -> np.ndarray:
    """P(keep) for each observation (as `view` gives them): the StateMask importance score."""
    with th.no_grad():
        obs, _ = mask.policy.obs_to_tensor(np.asarray(views))
        probs = mask.policy.get_distribution(obs).distribution.probs
    return probs[:, 1].cpu().numpy()
