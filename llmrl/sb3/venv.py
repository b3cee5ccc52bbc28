"""Training envs for SB3 methods: one DummyVecEnv of step-counted envs (the curve's x-axis),
optional VecEnv wrappers (ULTRA's critical-state guide sits here, below normalisation so it
sees raw observations and rewards), then VecNormalize when the hyperparameters ask for it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from llmrl.sb3 import hyperparams


def make_venv(
    spec,
    counter,
    hp: dict[str, Any],
    seed_base: int,
    normalizer: Path | None = None,
    wrap: Callable[[VecEnv], VecEnv] | None = None,
    env_wrap: Callable[[gym.Env], gym.Env] | None = None,
) -> VecEnv:
    """`normalizer`: a saved VecNormalize (from a checkpoint or a pre-trained agent) whose
    statistics carry over; otherwise fresh statistics if `hp` asks for normalisation.
    `env_wrap` wraps each counted env under the Monitor (e.g. starts from restored states)."""
    n_envs = int(hp.get("n_envs", 1))
    env_wrap = env_wrap or (lambda e: e)
    fns = [lambda i=i: Monitor(env_wrap(spec.make(seed=seed_base + i, counter=counter))) for i in range(n_envs)]
    venv: VecEnv = DummyVecEnv(fns)
    if wrap is not None:
        venv = wrap(venv)
    norm = hyperparams.normalize_kwargs(hp)
    if norm is None:
        return venv
    if normalizer is not None and Path(normalizer).exists():
        return VecNormalize.load(str(normalizer), venv)
    return VecNormalize(venv, gamma=float(hp.get("gamma", 0.99)), **norm)


def deterministic_act(model, venv: VecEnv) -> Callable[[Any], Any]:
    """The greedy policy on one raw observation, normalised with the training statistics
    (frozen: reading them does not update them)."""

    def act(obs):
        if isinstance(venv, VecNormalize):
            obs = venv.normalize_obs(obs)
        return model.predict(obs, deterministic=True)[0]

    return act


def observation_view(venv: VecEnv) -> Callable[[Any], Any]:
    """One raw observation as the agent's networks see it (normalised with the training
    statistics where there are any; images as they are), for models trained beside the agent
    (a StateMask network)."""
    norm = venv if isinstance(venv, VecNormalize) and venv.norm_obs else None

    def view(obs):
        x = np.asarray(obs)
        if norm is not None:
            return norm.normalize_obs(x).astype(np.float32)
        return x if x.ndim >= 3 or x.dtype == np.uint8 else x.astype(np.float32)

    return view
