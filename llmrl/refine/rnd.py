"""Random network distillation (Burda et al. 2019) as an exploration bonus on refinement's
training envs, as RICE uses it: a fixed random network f and a predictor f^ trained to match it
on the states the agent visits; the bonus for reaching s' is ||f(s') - f^(s')||^2 / 2, large on
states unlike those seen so far, and `weight` (RICE's lambda) times it is added to the env
reward. Observations are standardised with running statistics first (images scaled to [0, 1]),
so the bonus means the same for every env. The predictor learns after each rollout, on that
rollout's states (`RndCallback`)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import nn


def _network(shape: tuple[int, ...], hidden: int, out: int, deeper: bool) -> nn.Module:
    if len(shape) >= 3:  # channels-first frames
        body = [nn.Conv2d(shape[0], 16, 8, 4), nn.LeakyReLU(), nn.Conv2d(16, 32, 4, 2), nn.LeakyReLU(), nn.Flatten()]
        with th.no_grad():
            n = nn.Sequential(*body)(th.zeros(1, *shape)).shape[1]
        layers = [*body, nn.Linear(n, hidden), nn.ReLU()]
    else:
        layers = [nn.Flatten(), nn.Linear(int(np.prod(shape)), hidden), nn.ReLU()]
    if deeper:
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(hidden, out))
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(m.weight, np.sqrt(2))
            nn.init.zeros_(m.bias)
    return net


class RndBonus(VecEnvWrapper):
    def __init__(self, venv: VecEnv, weight: float, seed: int, hidden: int = 128, features: int = 64,
                 lr: float = 1e-4, epochs: int = 1, batch_size: int = 256) -> None:
        super().__init__(venv)
        shape = tuple(venv.observation_space.shape)
        self.image = len(shape) >= 3
        with th.random.fork_rng():  # the networks' draws leave the run's torch RNG untouched
            th.manual_seed(int(seed))
            self.target = _network(shape, hidden, features, deeper=False)
            self.predictor = _network(shape, hidden, features, deeper=True)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = th.optim.Adam(self.predictor.parameters(), lr=lr)
        self.obs_rms = None if self.image else RunningMeanStd(shape=shape)
        self.weight, self.epochs, self.batch_size = float(weight), int(epochs), int(batch_size)
        self.seen: list[np.ndarray] = []
        self.bonus_sum, self.bonus_steps = 0.0, 0

    def _inputs(self, obs: np.ndarray) -> th.Tensor:
        x = np.asarray(obs, dtype=np.float32)
        if self.image:
            x = x / 255.0
        else:
            x = np.clip((x - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8), -5.0, 5.0)
        return th.as_tensor(x, dtype=th.float32)

    def bonus(self, obs: np.ndarray) -> np.ndarray:
        with th.no_grad():
            x = self._inputs(obs)
            return (0.5 * (self.target(x) - self.predictor(x)).pow(2).sum(dim=1)).numpy()

    def reset(self):
        obs = self.venv.reset()
        if self.obs_rms is not None:
            self.obs_rms.update(np.asarray(obs, dtype=np.float64))
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        # the state reached by the step; at an episode's end SB3 keeps it in terminal_observation
        reached = np.stack([infos[i].get("terminal_observation", obs[i]) if dones[i] else obs[i] for i in range(self.num_envs)])
        if self.obs_rms is not None:
            self.obs_rms.update(reached.astype(np.float64))
        b = self.bonus(reached)
        rewards = (rewards.astype(np.float64) + self.weight * b).astype(np.float32)
        for i in range(self.num_envs):
            infos[i]["rnd_bonus"] = float(b[i])
        self.seen.append(reached)
        self.bonus_sum += float(b.sum())
        self.bonus_steps += self.num_envs
        return obs, rewards, dones, infos

    def learn(self) -> float:
        """Train the predictor on the states seen since the last call; returns its last loss."""
        if not self.seen:
            return float("nan")
        data = self._inputs(np.concatenate(self.seen))
        self.seen = []
        loss_value = float("nan")
        for _ in range(self.epochs):
            for idx in th.randperm(len(data)).split(self.batch_size):
                loss = 0.5 * (self.target(data[idx]) - self.predictor(data[idx])).pow(2).sum(dim=1).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                loss_value = loss.item()
        return loss_value

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "predictor": self.predictor.state_dict(),
                "optimizer": self.optimizer.state_dict(), "obs_rms": self.obs_rms,
                "bonus_sum": self.bonus_sum, "bonus_steps": self.bonus_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_rms = state["obs_rms"]
        self.bonus_sum, self.bonus_steps = state["bonus_sum"], state["bonus_steps"]


class RndCallback(BaseCallback):
    """After each rollout: the predictor learns the rollout's states; the mean bonus and the
    predictor's loss go to the training signals."""

    def __init__(self, rnd: RndBonus) -> None:
        super().__init__()
        self.rnd = rnd
        self._mark = (rnd.bonus_sum, rnd.bonus_steps)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        s, n = self.rnd.bonus_sum - self._mark[0], self.rnd.bonus_steps - self._mark[1]
        self._mark = (self.rnd.bonus_sum, self.rnd.bonus_steps)
        loss = self.rnd.learn()
        if n:
            self.logger.record("rnd/bonus_mean", s / n)
        self.logger.record("rnd/predictor_loss", loss)
