"""Behaviour cloning of the guide's measured episodes into a fresh SB3 agent, before RL goes on
from it: the actor learns the guide's actions (cross-entropy for discrete actions; squared error
of the mean action for boxes, so the exploration noise PPO and SAC start with is left alone),
the critic is pre-fitted to the guide's discounted returns, and SAC's replay buffer starts with
the guide's transitions. The observation (and reward) normalisers first take in the guide's data,
as they would have if those steps had been the agent's."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.vec_env import VecNormalize

from guided.replay import store


def discounted_returns(rewards: np.ndarray, starts: np.ndarray, gamma: float) -> np.ndarray:
    """Monte-Carlo return from each step to the end of its episode."""
    out = np.zeros_like(rewards, dtype=np.float64)
    running = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        last_of_episode = i == len(rewards) - 1 or starts[i + 1]
        running = rewards[i] + (0.0 if last_of_episode else gamma * running)
        out[i] = running
    return out


def _take_in(venv, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Update the normaliser's statistics with the guide's data; the agent's view of it."""
    obs, rewards = data["obs"], data["rewards"]
    if not isinstance(venv, VecNormalize):
        return obs.astype(np.float32), rewards
    if venv.norm_obs:
        venv.obs_rms.update(obs)
    if venv.norm_reward:
        ret, seen = 0.0, []
        for r, start in zip(rewards, data["starts"]):
            ret = (0.0 if start else ret * venv.gamma) + r
            seen.append(ret)
        venv.ret_rms.update(np.asarray(seen))
        rewards = venv.normalize_reward(rewards)
    return venv.normalize_obs(obs).astype(np.float32), rewards


def clone(model, venv, data: dict[str, np.ndarray], epochs: int, batch_size: int, learning_rate: float,
          value_fit: bool, gamma: float, seed: int) -> dict[str, Any]:
    """Train `model`'s actor (and critic) on the guide's data; the losses before and after."""
    obs, rewards = _take_in(venv, data)
    targets = discounted_returns(rewards, data["starts"], gamma)
    space = model.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    sac = hasattr(model, "actor")
    actions = data["actions"]
    if sac:  # SAC acts in [-1, 1] (tanh): its actor is taught the guide's action in those units
        actions = np.clip(model.policy.scale_action(actions), -1 + 1e-6, 1 - 1e-6)
    elif not discrete:
        actions = np.clip(actions, space.low, space.high)
    device = model.device
    obs_t = th.as_tensor(obs, device=device)
    act_t = th.as_tensor(actions, device=device, dtype=th.long if discrete else th.float32)
    ret_t = th.as_tensor(targets, device=device, dtype=th.float32).reshape(-1, 1)
    actor_params = list(model.actor.parameters()) if sac else list(model.policy.parameters())
    actor_opt = th.optim.Adam(actor_params, lr=learning_rate)
    critic_opt = th.optim.Adam(model.critic.parameters(), lr=learning_rate) if sac and value_fit else None
    gen = th.Generator().manual_seed(int(seed) % 2**63)
    n = len(obs_t)
    history = []
    for epoch in range(epochs):
        order = th.randperm(n, generator=gen)
        sums = np.zeros(2)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            a_loss, v_loss = _losses(model, obs_t[idx], act_t[idx], ret_t[idx], discrete, sac, value_fit)
            if sac:
                actor_opt.zero_grad()
                a_loss.backward()
                actor_opt.step()
                if critic_opt is not None:
                    critic_opt.zero_grad()
                    v_loss.backward()
                    critic_opt.step()
            else:
                actor_opt.zero_grad()
                (a_loss + (float(model.vf_coef) * v_loss if value_fit else 0.0)).backward()
                th.nn.utils.clip_grad_norm_(actor_params, float(model.max_grad_norm))
                actor_opt.step()
            sums += [a_loss.item() * len(idx), v_loss.item() * len(idx)]
        history.append((sums / n).round(6).tolist())
    if sac and value_fit:
        model.critic_target.load_state_dict(model.critic.state_dict())
    if sac:
        _fill_replay(model, data)
    return {"samples": int(n), "epochs": epochs, "action_loss": [h[0] for h in history],
            "value_loss": [h[1] for h in history] if value_fit else None}


def _losses(model, obs, actions, returns, discrete: bool, sac: bool, value_fit: bool):
    zero = th.zeros((), device=obs.device)
    if sac:
        mean = model.actor(obs, deterministic=True)
        a_loss = ((mean - actions) ** 2).mean()
        v_loss = zero
        if value_fit:
            v_loss = sum(((q - returns) ** 2).mean() for q in model.critic(obs, actions))
        return a_loss, v_loss
    dist = model.policy.get_distribution(obs)
    if discrete:
        a_loss = -dist.log_prob(actions).mean()
    else:
        a_loss = ((dist.distribution.mean - actions) ** 2).mean()
    v_loss = ((model.policy.predict_values(obs) - returns) ** 2).mean() if value_fit else zero
    return a_loss, v_loss


def _fill_replay(model, data: dict[str, np.ndarray]) -> None:
    """The guide's measured episodes as transitions: the next observation of each episode's last
    step is the one kept after it; a step that ends an episode without terminating it is a time limit."""
    raw = data["obs"]
    ends = np.append(data["starts"][1:], True)
    nxt = np.concatenate([raw[1:], raw[-1:]])
    nxt[np.flatnonzero(ends)] = data["final_obs"]
    terminated = data["terminals"].astype(bool)
    store(model, raw, nxt, data["actions"], data["rewards"], terminated, ends & ~terminated)
