"""Every env x {ppo, sac where the action space allows} composes into parts that build."""
from __future__ import annotations

import gymnasium as gym
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from llmrl.errors import ConfigError
from tests.conftest import ENV_NAMES, REPO


def build(env: str, method: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"env={env}", f"method={method}"])
    spec = instantiate(cfg.env, _convert_="all")
    algo = instantiate(cfg.method, _convert_="all")
    return cfg, spec, algo


@pytest.mark.parametrize("env", ENV_NAMES)
def test_ppo_composes_and_plans(env):
    cfg, spec, algo = build(env, "ppo")
    assert spec.name == env and cfg.method.algo == "ppo"
    budget = algo.budget(spec)
    assert budget > 0
    # every env has its own entry (or the documented default) in the PPO table
    assert algo.hp["policy"] in ("MlpPolicy", "CnnPolicy")


@pytest.mark.parametrize("env", ENV_NAMES)
def test_sac_composes_where_continuous(env):
    cfg, spec, algo = build(env, "sac")
    probe = spec.make()
    continuous = isinstance(probe.action_space, gym.spaces.Box)
    probe.close()
    if continuous:
        assert algo.budget(spec) > 0
    else:
        with pytest.raises(ConfigError, match="continuous"):
            algo.budget(spec)


def test_hparam_overrides_reach_sb3():
    from llmrl.sb3.hyperparams import resolve, to_sb3_kwargs

    hp = resolve("ppo", "mujoco_hopper", {"learning_rate": 1e-3})
    kwargs = to_sb3_kwargs(hp)
    assert kwargs["learning_rate"] == 1e-3 and kwargs["n_steps"] == 512
    import torch.nn as nn

    assert kwargs["policy_kwargs"]["activation_fn"] is nn.ReLU
    schedule = to_sb3_kwargs(resolve("ppo", "cartpole", {}))["learning_rate"]
    assert schedule(1.0) == pytest.approx(0.001) and schedule(0.5) == pytest.approx(0.0005)
