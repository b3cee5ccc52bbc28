"""Every env config builds train and eval envs that pass gymnasium's checker, and every
LLM-facing reward source reproduces the env's own reward along a random rollout."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hydra.utils import instantiate
from omegaconf import OmegaConf

from llmrl.counting import StepCounter
from llmrl.envs.noise_world import GOAL, TRAP, NoiseWorldEnv, _reachable
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
        "atari_pong", "glucose", *[f"noise_world_board_{i}" for i in range(7)],
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


# ---- NoiseWorld rules ------------------------------------------------------------------------
@pytest.mark.parametrize("board", range(7))
def test_noise_world_boards_are_fixed_and_solvable(board):
    spec = load_spec(f"noise_world_board_{board}")
    a, b = spec.make(), spec.make()
    ua, ub = a.unwrapped, b.unwrapped
    assert np.array_equal(ua.board, ub.board), "a board must be a pure function of its seed"
    assert ua.n == (5 if board == 0 else 10)
    assert spec.horizon == ua.n**2
    assert len(ua.milestones) == (2 if board >= 4 else 0)
    waypoints = [(0, 0), *ua.milestones, (ua.n - 1, ua.n - 1)]
    assert all(_reachable(ua.board, s, t) for s, t in zip(waypoints, waypoints[1:]))
    assert ua.board[ua.n - 1, ua.n - 1] == GOAL


def _path(board, src, dst):
    """Breadth-first shortest path as a list of moves (0 up, 1 right, 2 down, 3 left)."""
    from collections import deque

    moves = ((-1, 0), (0, 1), (1, 0), (0, -1))
    prev = {src: None}
    queue = deque([src])
    while queue:
        cell = queue.popleft()
        if cell == dst:
            break
        for m, (dr, dc) in enumerate(moves):
            nxt = (cell[0] + dr, cell[1] + dc)
            n = board.shape[0]
            if 0 <= nxt[0] < n and 0 <= nxt[1] < n and nxt not in prev and board[nxt] not in (3, TRAP):
                prev[nxt] = (cell, m)
                queue.append(nxt)
    out, cell = [], dst
    while prev[cell] is not None:
        cell, m = prev[cell]
        out.append(m)
    return out[::-1]


@pytest.mark.parametrize("board", [0, 4])
def test_noise_world_goal_pays_n_cubed_after_milestones(board):
    env = NoiseWorldEnv(size=5 if board == 0 else 10, board_seed=board, milestones=board >= 4, stay_prob=0.0, reset_prob=0.0)
    env.reset(seed=0)
    waypoints = [(0, 0), *env.milestones, (env.n - 1, env.n - 1)]
    rewards, info, terminated = [], {}, False
    for s, t in zip(waypoints, waypoints[1:]):
        for move in _path(env.board, s, t):
            assert not terminated
            _, r, terminated, _, info = env.step(move)
            rewards.append(r)
    assert terminated and info["is_success"]
    assert rewards[-1] == env.n**3
    assert all(r == -1 for r in rewards[:-1])


def test_noise_world_trap_costs_n_to_the_fifth():
    env = NoiseWorldEnv(size=10, board_seed=1, stay_prob=0.0, reset_prob=0.0)
    env.reset(seed=0)
    traps = list(zip(*np.where(env.board == TRAP)))
    target = next(t for t in traps if any(_reachable(env.board, (0, 0), nb) for nb in _neighbours(t, env.n)))
    nb = next(nb for nb in _neighbours(target, env.n) if _reachable(env.board, (0, 0), nb))
    for move in _path(env.board, (0, 0), nb):
        env.step(move)
    step_into = {(-1, 0): 0, (0, 1): 1, (1, 0): 2, (0, -1): 3}[(target[0] - nb[0], target[1] - nb[1])]
    _, r, terminated, _, _ = env.step(step_into)
    assert terminated and r == -(10**5)


def _neighbours(cell, n):
    for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
        r, c = cell[0] + dr, cell[1] + dc
        if 0 <= r < n and 0 <= c < n:
            yield (r, c)


@pytest.mark.parametrize("code", [1, 2])  # 1 = stochastic-stay, 2 = stochastic-reset
def test_noise_world_stochastic_regions_act(code):
    """With the probability at 1, a move from a stay cell never moves, one from a reset cell
    always lands on the start."""
    for seed in range(7):
        env = NoiseWorldEnv(size=10, board_seed=seed, stay_prob=1.0, reset_prob=1.0)
        cells = [tuple(int(v) for v in c) for c in zip(*np.where(env.board == code)) if tuple(c) != (0, 0)]
        if cells:
            break
    assert cells, "no board among seeds 0-6 has a region of this kind"
    env.reset(seed=0)
    env.pos = cells[0]
    for move in range(4):
        obs, _, _, _, _ = env.step(move)
        expected = cells[0] if code == 1 else (0, 0)
        assert env.pos == expected
        env.pos = cells[0]
