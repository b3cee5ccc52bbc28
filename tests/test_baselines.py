"""Evaluation of a normalised-observation agent uses the training normaliser, frozen."""
from __future__ import annotations

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from llmrl.evaluation import evaluate
from llmrl.seeding import eval_seeds
from llmrl.tracking import read_curve
from tests.conftest import REPO, run_cli


def test_checkpoint_and_normaliser_reproduce_last_eval_point(run_dir):
    run_cli("env=mujoco_hopper", "method=ppo", f"hydra.run.dir={run_dir}", "method.total_steps=2048", "method.eval_every=1024",
            "env.eval_episodes=2", "logger.progress=false", check=True)
    last = read_curve(run_dir)[-1]
    spec = instantiate(OmegaConf.load(REPO / "conf" / "env" / "mujoco_hopper.yaml"), _convert_="all")
    norm = VecNormalize.load(str(run_dir / "checkpoint" / "vecnormalize.pkl"), DummyVecEnv([lambda: spec.make()]))
    assert norm.obs_rms.count > 2048 * 0.9  # statistics were gathered while training
    model = PPO.load(str(run_dir / "checkpoint" / "model.zip"), device="cpu")
    seeds = eval_seeds(0, 1_000_000, 2)

    frozen = norm.obs_rms.mean.copy()
    normalised = evaluate(spec, lambda o: model.predict(norm.normalize_obs(o), deterministic=True)[0], seeds)
    assert np.array_equal(norm.obs_rms.mean, frozen), "evaluation must not update the normaliser"
    assert normalised.point()["return_mean"] == last["return_mean"]

    raw = evaluate(spec, lambda o: model.predict(o, deterministic=True)[0], seeds)
    assert raw.point()["return_mean"] != last["return_mean"]  # the normaliser matters to this agent
