"""Every env config builds train and eval envs that pass gymnasium's checker, and every
LLM-facing reward source reproduces the env's own reward along a random rollout."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hydra.utils import instantiate
from omegaconf import OmegaConf

from llmrl.counting import StepCounter
from tests.conftest import ENV_NAMES, REPO

# Long enough to cross episode ends for the short-horizon envs; Pong needs a few points scored.
ROLLOUT_STEPS = {"atari_pong": 1500, "glucose": 150}


def load_spec(name: str):
    return instantiate(OmegaConf.load(REPO / "conf" / "env" / f"{name}.yaml"), _convert_="all")


def test_all_issue_envs_have_configs():
    expected = {
        "cartpole", "mountaincar", "mountaincar_continuous", "acrobot", "pendulum", "point_maze_large",
        "metaworld_button_press", "metaworld_pick_place", "metaworld_door_open", "metaworld_drawer_open",
        "metaworld_reach", "metaworld_push", "mujoco_hopper", "mujoco_halfcheetah", "mujoco_walker2d",
        "mujoco_ant", "mujoco_swimmer", "mujoco_reacher", "mujoco_inverted_double_pendulum", "mujoco_humanoid",
        "atari_pong", "glucose", "traffic_merge", "pandemic", *[f"noise_world_board_{i}" for i in range(7)],
    }
    assert expected <= set(ENV_NAMES)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_env_builds_and_passes_checker(name):
    spec = load_spec(name)
    counter = StepCounter()
    train = spec.make(seed=0, counter=counter)
    evaluation = spec.make(seed=123)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(train, skip_render_check=True)
        check_env(evaluation, skip_render_check=True)
    # the counted env counts; the eval env is a separate instance
    train.reset(seed=0)
    before = counter.steps
    train.step(train.action_space.sample())
    assert counter.steps == before + 1
    assert evaluation is not train
    train.close()
    evaluation.close()


@pytest.mark.parametrize("name", ENV_NAMES)
def test_reward_source_reproduces_env_reward(name):
    spec = load_spec(name)
    desc = spec.describe()
    assert desc.observation_source.strip() and desc.action_context.strip() and desc.reward_source.strip()
    assert "# include:" not in desc.reward_source + desc.observation_source  # shared parts are inlined for the LLM
    assert "${" not in desc.reward_source + desc.observation_source + desc.action_context  # every placeholder filled
    if not desc.reward_is_code:  # told in words only (NoiseWorld, as published): returns are the env's own
        return
    env = spec.make(seed=0)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    rewards_seen = set()
    for _ in range(ROLLOUT_STEPS.get(name, 300)):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        described = desc.reward(obs, action, next_obs, info)
        assert described == pytest.approx(float(reward), rel=1e-6, abs=1e-6), (name, described, reward)
        rewards_seen.add(round(float(reward), 6))
        obs = next_obs
        if terminated or truncated:
            obs, info = env.reset()
    if name == "atari_pong":
        assert len(rewards_seen) > 1, "a random Pong player should concede at least one point"
    env.close()


@pytest.mark.parametrize("name", ENV_NAMES)
def test_observation_class_reads_the_raw_vector(name):
    spec = load_spec(name)
    desc = spec.describe()
    env = spec.make(seed=0)
    obs, _ = env.reset(seed=0)
    wrapped = desc.wrap(obs)
    assert np.array_equal(np.asarray(wrapped.raw).ravel(), np.asarray(obs).ravel().astype(np.asarray(wrapped.raw).dtype))
    public = [k for k in vars(wrapped) if not k.startswith("_") and k != "raw"]
    assert public, f"{name}: the observation class names no fields"
    env.close()


def test_point_maze_and_glucose_are_shaped_as_promptpo_runs_them():
    from gymnasium_robotics.envs.maze.maps import LARGE_MAZE, LARGE_MAZE_DIVERSE_G

    large = load_spec("point_maze_large")
    env = large.make(seed=0).unwrapped
    assert (env.maze.map_length, env.maze.map_width) == (9, 10) and large.make_kwargs["maze_map"] != LARGE_MAZE
    assert load_spec("point_maze_large_diverse_g").make_kwargs["maze_map"] == LARGE_MAZE_DIVERSE_G
    text = large.describe().observation_source
    assert "NOT the PointMaze_Large" in text and "[1, 0" not in text  # the LLM is told no layout
    glucose = load_spec("glucose")
    assert glucose.horizon == 20 * 12 * 24
    env = glucose.make(seed=0)
    obs, _ = env.reset(seed=0)
    seen = glucose.describe().observation_class(obs)
    assert seen.bg.shape == seen.insulin.shape == seen.cho.shape == (48,) and seen.is_terminated is False
    assert env.action_space.low.tolist() == [0.0] and env.action_space.high.tolist() == [0.1]
