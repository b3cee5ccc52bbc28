"""Training envs for SB3 methods: one DummyVecEnv of step-counted envs (the curve's x-axis),
optional VecEnv wrappers (ULTRA's critical-state guide sits here, below normalisation so it
sees raw observations and rewards), then VecNormalize when the hyperparameters ask for it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

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
) -> VecEnv:
    """`normalizer`: a saved VecNormalize (from a checkpoint or a pre-trained agent) whose
    statistics carry over; otherwise fresh statistics if `hp` asks for normalisation."""
    n_envs = int(hp.get("n_envs", 1))
    fns = [lambda i=i: Monitor(spec.make(seed=seed_base + i, counter=counter)) for i in range(n_envs)]
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
