"""NoiseWorld as published: the reference's seven boards cell for cell, its dynamics measured
against the stated probabilities, its milestone and reward rules, and a description that tells the
LLM no more than the reference's does."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.stats import binomtest

from llmrl.envs.noise_world import BAD, GOAL, MILESTONE_1, MILESTONE_2, RESET, STAY, WALL, NoiseWorldEnv
from tests.conftest import REPO
from tests.test_envs import load_spec

REFERENCE = {k: v for k, v in json.loads((REPO / "tests" / "data" / "noise_world_reference_boards.json").read_text()).items()
             if not k.startswith("_")}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_boards_are_the_reference_boards_cell_for_cell(name):
    ref = REFERENCE[name]
    spec = load_spec(name)
    env = spec.make(seed=0).unwrapped
    lay = env.layout
    assert (spec.make_kwargs["n"], spec.make_kwargs["seed"], spec.horizon) == (ref["n"], ref["seed"], ref["n"] ** 2)
    assert lay.board.tolist() == ref["board"] and lay.region.tolist() == ref["region_id"]
    assert [k + 1 for k in lay.kind] == ref["region_cell_type"]  # the reference numbers kinds 1, 2, 3
    assert lay.p == ref["region_p"] and lay.p_prime == ref["region_p_prime"]
    assert sorted(map(list, lay.walls)) == ref["walls"] and sorted(map(list, lay.bad)) == ref["bad_cells"]
    assert [list(m) for m in lay.milestones] == [m for m in (ref["milestone_first"], ref["milestone_second"]) if m]
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4 + ref["n"] ** 2 + (2 if ref["milestones"] else 0),) and obs.dtype == np.float32
    assert obs[4:4 + ref["n"] ** 2].reshape(ref["n"], ref["n"]).tolist() == ref["board"]


def _cell_of_kind(env, kind):
    """A cell of the given region kind with an unblocked, non-special neighbour to move to."""
    lay = env.layout
    for r in range(env.n):
        for c in range(env.n):
            if lay.board[r, c] != kind or (r, c) == lay.start:
                continue
            for action, (dr, dc) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
                t = (r + dr, c + dc)
                if 0 <= t[0] < env.n and 0 <= t[1] < env.n and lay.board[t] not in (WALL, GOAL, BAD):
                    return (r, c), action, t
    return None


@pytest.mark.parametrize("kind", [STAY, RESET])
def test_stochastic_cells_move_with_the_stated_probabilities(kind):
    env = next(e for e in (load_spec(f"noise_world_board_{b}").make().unwrapped for b in range(1, 7))
               if _cell_of_kind(e, kind))
    (r, c), action, target = _cell_of_kind(env, kind)
    _, p, p_prime = env.layout.move_probabilities(r, c)
    expected = p if kind == STAY else p / (p + 1 - p_prime)
    env.reset(seed=7)
    moved, trials = 0, 4000
    for _ in range(trials):
        env.pos, env.steps = (r, c), 0
        _, reward, _, _, info = env.step(action)
        assert info["pos"] in ((target, (r, c)) if kind == STAY else (target, env.layout.start))
        moved += info["pos"] == target
    low, high = binomtest(moved, trials, expected).proportion_ci(0.99)
    assert low <= expected <= high, (kind, moved / trials, expected)


def test_a_blocked_move_stays_put_and_draws_no_noise():
    env = load_spec("noise_world_board_1").make().unwrapped
    env.reset(seed=0)
    before = env._rng.bit_generator.state
    env.pos = (0, 0)
    _, reward, terminated, _, info = env.step(0)  # up, off the grid
    assert info["pos"] == (0, 0) and reward == -1.0 and not terminated
    assert env._rng.bit_generator.state == before  # a blocked move draws no noise


def _into(env, target):
    """A free neighbour of `target` and the action that moves from it onto `target`."""
    for action, (dr, dc) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
        src = (target[0] - dr, target[1] - dc)
        if 0 <= src[0] < env.n and 0 <= src[1] < env.n and env.layout.board[src] not in (WALL, GOAL, BAD):
            return src, action
    raise AssertionError(f"no way into {target}")


def test_goal_before_the_milestones_ends_the_episode_without_the_bonus():
    env = load_spec("noise_world_board_4").make().unwrapped
    n, goal = env.n, env.layout.goal
    env.reset(seed=0)
    env.pos, action = _into(env, goal)
    obs, reward, terminated, _, info = _force_move(env, action, goal)
    assert terminated and reward == -1.0 and not info["is_success"] and obs[-2:].tolist() == [0.0, 0.0]
    # after both milestones, in order, the same step pays -1 + n^3
    env.reset(seed=0)
    for milestone in env.layout.milestones:
        env.pos, action = _into(env, milestone)
        obs, *_ = _force_move(env, action, milestone)
    assert obs[-2:].tolist() == [1.0, 1.0]
    env.pos, action = _into(env, goal)
    obs, reward, terminated, _, info = _force_move(env, action, goal)
    assert terminated and reward == -1.0 + n ** 3 and info["is_success"]


def test_a_bad_cell_costs_n_to_the_fifth_and_ends_the_episode():
    env = load_spec("noise_world_board_2").make().unwrapped
    (bad,) = env.layout.bad
    env.reset(seed=0)
    env.pos, action = _into(env, bad)
    _, reward, terminated, _, _ = _force_move(env, action, bad)
    assert terminated and reward == -1.0 - env.n ** 5


def _force_move(env, action, target):
    """Step from the current cell until the move lands on `target` (stochastic cells may need a few tries)."""
    start, phase = env.pos, env.phase
    for _ in range(200):
        env.pos, env.steps, env.phase = start, 0, phase
        out = env.step(action)
        if out[4]["pos"] == target:
            return out
    raise AssertionError("the move never succeeded")


def test_the_same_seed_gives_the_same_episode():
    runs = []
    for _ in range(2):
        env = load_spec("noise_world_board_3").make()
        env.reset(seed=11)
        rng = np.random.default_rng(0)
        runs.append([env.step(int(rng.integers(4)))[1:3] for _ in range(60)])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("name", [f"noise_world_board_{b}" for b in range(7)])
def test_a_no_prior_board_tells_the_llm_no_label_meaning_and_no_reward_number(name):
    desc = load_spec(name).describe()
    text = (desc.observation_source + desc.action_context + desc.reward_source).lower()
    assert not desc.reward_is_code and not re.search(r"\d", desc.reward_source)
    for word in ("wall", "trap", "bad ", "milestone", "stochastic", "reset", "determin", "prereq_first_done is 1"):
        assert word not in text, (name, word)
    assert f"n = {load_spec(name).make_kwargs['n']}" in desc.observation_source


def test_key_info_boards_explain_the_milestones():
    desc = load_spec("noise_world_board_5_key_info").describe()
    assert "labelled 6" in desc.observation_source and "labelled 7" in desc.observation_source
    assert load_spec("noise_world_board_5_key_info").make_kwargs == load_spec("noise_world_board_5").make_kwargs
    assert MILESTONE_1 == 6 and MILESTONE_2 == 7
