"""How the critical-state table steers PPO refinement.

`CriticalStateGuide` is a VecEnv wrapper under normalisation: after every reset and step it
matches each sub-env's live state against the table. The guided policies take the entry's
action at a matched state (ULTRA-A) at the moment PPO samples actions, and report its
log-probability under the current policy, so the rollout buffer holds the action that was
executed. With rewards on (ULTRA-R), the step from a matched state earns, on top of the env
reward, `reward_weight` x the LLM's reward for the action executed there: its reward for its
own suggestion when that was executed, its reward for the agent's identified action when an
action equal to (or within `action_tolerance` of) that one was executed, nothing otherwise
(`ultra.table.payment`). Evaluation goes through `predict`, which the override does not touch:
the curve measures the network alone."""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from ultra.table import CriticalTable, payment


class CriticalStateGuide(VecEnvWrapper):
    def __init__(self, venv: VecEnv, key_fn: Callable[[Any, dict], np.ndarray], reward_weight: float,
                 use_actions: bool, use_rewards: bool, action_space: gym.Space | None = None,
                 action_tolerance: float = 0.1) -> None:
        super().__init__(venv)
        self.key_fn = key_fn
        self.reward_weight = float(reward_weight)
        self.use_actions, self.use_rewards = use_actions, use_rewards
        self.space = action_space if action_space is not None else venv.action_space
        self.action_tolerance = float(action_tolerance)
        self.table: CriticalTable | None = None
        self.matches = np.full(self.num_envs, -1)
        self._acted_on = self.matches
        self._actions: np.ndarray | None = None
        self._live: tuple[Any, list[dict]] | None = None  # the states the next actions are chosen in
        self.acted_states = 0    # states actions were taken in (refinement's own steps)
        self.matched_states = 0  # of those, states that matched an entry
        self.overrides = 0       # actions replaced by the table's (counted by the policy)
        self.shaped_steps = 0    # steps that earned an LLM reward (for the suggested or the taken action)

    def set_table(self, table: CriticalTable | None) -> None:
        """A new table applies from the current live states on (they are matched again now)."""
        self.table = table
        self.matches = np.full(self.num_envs, -1)
        if self._live is not None:
            self._match(*self._live)

    def _match(self, obs: Any, infos: list[dict]) -> None:
        self._live = (obs, infos)
        if self.table is None or not len(self.table):
            self.matches = np.full(self.num_envs, -1)
            return
        keys = np.stack([self.key_fn(_row(obs, i), infos[i]) for i in range(self.num_envs)])
        self.matches = self.table.match(keys)

    def rematch(self, obs: Any, dones: np.ndarray, infos: list[dict], reset_infos: list[dict]) -> None:
        """The live states of a restored vec env (exact resume), as step_wait would have seen them."""
        self._match(obs, [reset_infos[i] if dones[i] else infos[i] for i in range(self.num_envs)])

    def reset(self):
        obs = self.venv.reset()
        self._match(obs, list(getattr(self.venv, "reset_infos", [{}] * self.num_envs)))
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._acted_on = self.matches.copy()  # the states these actions were chosen in
        self._actions = np.asarray(actions)
        self.acted_states += self.num_envs
        self.matched_states += int((self._acted_on >= 0).sum())
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        if self.use_rewards and self.table is not None:
            rewards = rewards.astype(np.float64)
            for i in np.nonzero(self._acted_on >= 0)[0]:
                paid = payment(self.table.entries[self._acted_on[i]], self._actions[i], self.space, self.action_tolerance)
                if paid is not None:
                    bonus = self.reward_weight * paid[0]
                    rewards[i] += bonus
                    infos[i]["ultra_bonus"], infos[i]["ultra_paid_for"] = float(bonus), paid[1]
                    self.shaped_steps += 1
            rewards = rewards.astype(np.float32)
        # After an automatic reset the live state is the new episode's first one.
        reset_infos = getattr(self.venv, "reset_infos", None)
        live = [reset_infos[i] if dones[i] and reset_infos is not None else infos[i] for i in range(self.num_envs)]
        self._match(obs, live)
        return obs, rewards, dones, infos

    def table_actions(self, rows: np.ndarray) -> list[Any]:
        return [self.table.entries[j].action for j in self.matches[rows]]


def _row(obs: Any, i: int) -> Any:
    if isinstance(obs, dict):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]


class GuideMixin:
    """Replaces PPO's sampled action by the table's at matched states (ULTRA-A)."""

    guide: CriticalStateGuide | None = None

    def forward(self, obs: th.Tensor, deterministic: bool = False):
        # SB3's actor-critic forward pass, with the override between sampling and log-prob, so
        # an overridden step costs one extra log_prob and not a second pass through the network.
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            latent_pi, latent_vf = self.mlp_extractor.forward_actor(features[0]), self.mlp_extractor.forward_critic(features[1])
        values = self.value_net(latent_vf)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        g = self.guide
        if g is not None and g.use_actions and g.table is not None and len(g.matches) == actions.shape[0]:
            rows = np.nonzero(g.matches >= 0)[0]
            if len(rows):
                chosen = th.as_tensor(np.asarray(g.table_actions(rows)), dtype=actions.dtype, device=actions.device)
                actions = actions.clone()
                actions[th.as_tensor(rows)] = chosen.reshape((len(rows),) + tuple(actions.shape[1:]))
                g.overrides += len(rows)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))
        return actions, values, log_prob


class GuidedMlpPolicy(GuideMixin, ActorCriticPolicy):
    pass


class GuidedCnnPolicy(GuideMixin, ActorCriticCnnPolicy):
    pass


GUIDED_POLICIES = {"MlpPolicy": GuidedMlpPolicy, "CnnPolicy": GuidedCnnPolicy}

