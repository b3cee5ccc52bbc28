"""Policies written the way PromptPO's published ones are (Stephanehk/PromptPO
`representitive_policies/`: the reference's imports and observation fields; these files are ours)
run unchanged with `scripts/evaluate_policy.py +interface=reference`, one env of each family. Each
policy checks what it is handed, so a wrong or missing field fails the run."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env

HOPPER = """from abc import ABCMeta
import numpy as np
from direct_policy_learning.observations import MujocoHopperObservation


class HopperV5Policy:
    def act(self, obs):
        assert isinstance(obs, MujocoHopperObservation)
        assert obs.obs_vector.shape == (11,) and obs.qpos.shape == (6,) and obs.qvel.shape == (6,)
        assert np.allclose(obs.obs_vector[:5], obs.qpos[1:]) and obs.root_x_position == obs.qpos[0]
        assert np.allclose(obs.obs_vector[5:], np.clip(obs.qvel, -10, 10)) and abs(obs.dt - 0.008) < 1e-12
        assert obs.state_vector().shape == (12,)
        return np.clip(-2.0 * obs.obs_vector[1:4] - 0.2 * obs.obs_vector[7:10], -1, 1)
"""
BUTTON = """from abc import ABCMeta
import numpy as np
from direct_policy_learning.observations import MetaWorldButtonPressV3Observation


class ButtonPressV3Policy:
    def act(self, obs):
        assert isinstance(obs, MetaWorldButtonPressV3Observation) and obs.obs_vector.shape == (39,)
        hand, button = obs.obs_vector[0:3], obs.obs_vector[4:7]
        return np.append(np.clip(10.0 * (button - hand), -1, 1), 0.0)
"""
MAZE = """import numpy as np
from direct_policy_learning.observations.point_maze_large_diverse_g_v3_observation import PointMazeLargeDiverseGV3Observation


class PointMazeLargeDiverseGV3Policy:
    def act(self, obs):
        assert isinstance(obs, PointMazeLargeDiverseGV3Observation) and obs.observation_vector.shape == (4,)
        assert np.allclose(obs.achieved_goal, obs.observation_vector[:2]) and obs.desired_goal.shape == (2,)
        return np.clip(obs.desired_goal - obs.achieved_goal, -1, 1)
"""
NOISE_WORLD = """from abc import ABCMeta
import numpy as np
from direct_policy_learning.observations import NoiseWorldObservation


class NoiseWorldBoard1Policy:
    def act(self, obs):
        assert isinstance(obs, NoiseWorldObservation) and len(obs.board) == 100
        assert 0.0 <= obs.agent_row <= 1.0 and obs.goal_row == 1.0 and obs.prereq_first_done == 0.0
        return 1 if obs.agent_row < obs.goal_row else 3
"""
GLUCOSE = """from abc import ABCMeta
import numpy as np
from bgp.simglucose.envs.glucose_obs_wrapper import GlucoseObservation


class GlucosePolicy:
    def act(self, obs):
        assert isinstance(obs, GlucoseObservation) and len(obs.bg) == len(obs.insulin) == len(obs.cho) == 48
        assert obs.is_terminated in (True, False) and obs.bg[-1] > 0
        return np.array([0.02 if obs.bg[-1] > 140 else 0.0])
"""

PANDEMIC = """from abc import ABCMeta
import numpy as np
from pandemic.python.pandemic_simulator.environment.interfaces import PandemicObservation
from pandemic.python.pandemic_simulator.environment.interfaces import InfectionSummary, sorted_infection_summary


class PandemicPolicy:
    def act(self, obs):
        assert isinstance(obs, PandemicObservation) and obs.global_infection_summary.shape == (3, 1, 5)
        infected = obs.global_infection_summary[-1, -1, sorted_infection_summary.index(InfectionSummary.INFECTED)]
        return 2 if infected > 0.05 and obs.stage[-1][-1].item() < 2 else 1
"""
TRAFFIC = """from abc import ABCMeta
import numpy as np
from flow_reward_misspecification.flow.envs.traffic_obs_wrapper import TrafficObservation


class TrafficPolicy:
    def act(self, obs):
        assert isinstance(obs, TrafficObservation) and obs.max_speed == 30.0 and obs.max_length == 373.0
        assert len(obs.ego_speeds) == 10 and len(obs.rl_ids) <= 10 and not obs.fail
        return np.clip(obs.target_velocity - obs.ego_speeds, -1.5, 1.5).astype(np.float32)
"""


def evaluate(tmp_path, source, *args):
    policy = tmp_path / "policy.py"
    policy.write_text(source)
    return subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_policy.py"), str(policy), *args, "+episodes=1"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("source, env", [(HOPPER, "mujoco_hopper"), (BUTTON, "metaworld_button_press"),
                                         (MAZE, "point_maze_large_diverse_g"), (NOISE_WORLD, "noise_world_board_1"),
                                         (GLUCOSE, "glucose"), (PANDEMIC, "pandemic"), (TRAFFIC, "traffic_merge")],
                         ids=["mujoco", "metaworld", "point_maze", "noise_world", "glucose", "pandemic", "traffic"])
def test_a_policy_in_the_reference_form_runs_unchanged(tmp_path, source, env):
    extra = ["env.horizon=40"] if env in ("glucose", "traffic_merge") else []  # 20 simulated days, 500 s otherwise
    proc = evaluate(tmp_path, source, f"env={env}", "+interface=reference", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "episode 0: return" in proc.stdout


def test_without_the_reference_interface_such_a_file_fails_clearly(tmp_path):
    proc = evaluate(tmp_path, HOPPER, "env=mujoco_hopper")
    assert proc.returncode == 1 and "MujocoHopperObservation" in proc.stderr
