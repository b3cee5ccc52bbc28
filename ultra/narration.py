"""Per-environment state interpretation: how one step of a trajectory becomes a sentence for
the LLM, and which vector identifies a state when live states are matched against the
critical-state table. Both read the same source, so what the LLM judged is what is matched."""
from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from llmrl.envs.description import Description


class Narrator(Protocol):
    def key(self, obs: Any, info: dict) -> np.ndarray: ...

    def describe_state(self, obs: Any, info: dict) -> str: ...

    def describe_action(self, action: Any) -> str: ...


def _num(v: float) -> str:
    return f"{v:.4g}"


class FieldNarrator:
    """The named fields of the env's documented observation class (e.g. Hopper: torso height,
    torso angle, forward velocity...). The matching key is the raw observation vector."""

    def __init__(self, description: Description, action_space: gym.Space) -> None:
        self.description = description
        self.action_space = action_space

    def fields(self, obs: Any) -> dict[str, float]:
        view = self.description.wrap(obs)
        return {k: float(v) for k, v in vars(view).items() if k != "raw" and isinstance(v, (int, float, np.number))}

    def key(self, obs: Any, info: dict) -> np.ndarray:
        return np.asarray(obs, dtype=np.float64).ravel()

    def describe_state(self, obs: Any, info: dict) -> str:
        return ", ".join(f"{k}={_num(v)}" for k, v in self.fields(obs).items())

    def describe_action(self, action: Any) -> str:
        if isinstance(self.action_space, gym.spaces.Discrete):
            return str(int(np.asarray(action).item()))
        return "[" + ", ".join(_num(float(a)) for a in np.asarray(action).ravel()) + "]"


# Atari Pong console RAM (the same bytes the env's description documents).
PONG_BALL_X, PONG_BALL_Y, PONG_PLAYER_Y, PONG_OPPONENT_Y = 49, 54, 51, 50
PONG_PLAYER_SCORE, PONG_OPPONENT_SCORE = 14, 13
PONG_ACTIONS = ["NOOP", "FIRE", "RIGHT (up)", "LEFT (down)", "RIGHTFIRE (up)", "LEFTFIRE (down)"]


class PongNarrator:
    """Pong from the emulator RAM (`info["ram"]` after the step, `info["prev_ram"]` before
    it, from the AtariRamInfo wrapper): ball position and velocity, both paddles, the score.
    The matching key is (ball x, ball y, your paddle y, opponent paddle y, ball dx, ball dy)."""

    def __init__(self, description: Description, action_space: gym.Space) -> None:
        self.action_space = action_space

    @staticmethod
    def values(info: dict) -> dict[str, int]:
        ram = np.asarray(info["ram"], dtype=np.int64)
        prev = np.asarray(info.get("prev_ram", info["ram"]), dtype=np.int64)
        return {
            "ball_x": int(ram[PONG_BALL_X]),
            "ball_y": int(ram[PONG_BALL_Y]),
            "paddle_y": int(ram[PONG_PLAYER_Y]),
            "opponent_y": int(ram[PONG_OPPONENT_Y]),
            "ball_dx": int(ram[PONG_BALL_X] - prev[PONG_BALL_X]),
            "ball_dy": int(ram[PONG_BALL_Y] - prev[PONG_BALL_Y]),
            "score": int(ram[PONG_PLAYER_SCORE]),
            "opponent_score": int(ram[PONG_OPPONENT_SCORE]),
        }

    def key(self, obs: Any, info: dict) -> np.ndarray:
        v = self.values(info)
        return np.array([v["ball_x"], v["ball_y"], v["paddle_y"], v["opponent_y"], v["ball_dx"], v["ball_dy"]], dtype=np.float64)

    def describe_state(self, obs: Any, info: dict) -> str:
        v = self.values(info)
        return (f"ball at x={v['ball_x']} y={v['ball_y']} moving dx={v['ball_dx']} dy={v['ball_dy']}; "
                f"your paddle y={v['paddle_y']}; opponent paddle y={v['opponent_y']}; "
                f"score you {v['score']} - {v['opponent_score']} opponent")

    def describe_action(self, action: Any) -> str:
        a = int(np.asarray(action).item())
        return f"{a} ({PONG_ACTIONS[a]})" if a < len(PONG_ACTIONS) else str(a)


class PandemicNarrator:
    """The pandemic's day from its observation class: the stage, the latest sample's true and tested
    proportions (infected, critical, dead, recovered), the delta variant's infected share and whether
    testing is above its threshold. The matching key is the last day's three samples."""

    SHOWN = (("infected", 2), ("critical", 0), ("dead", 1), ("recovered", 4))

    def __init__(self, description: Description, action_space: gym.Space) -> None:
        self.description = description

    def key(self, obs: Any, info: dict) -> np.ndarray:
        return np.asarray(obs, dtype=np.float64).reshape(-1, 33)[-3:].ravel()

    def describe_state(self, obs: Any, info: dict) -> str:
        view = self.description.wrap(obs)
        true, tested = view.global_infection_summary[-1, -1], view.global_testing_summary[-1, -1]
        delta = view.global_infection_summary_delta[-1, -1]
        parts = [f"stage={int(view.stage[-1, -1, 0])}"]
        parts += [f"{name}={_num(true[i])}" for name, i in self.SHOWN]
        parts += [f"tested_{name}={_num(tested[i])}" for name, i in self.SHOWN]
        parts += [f"delta_infected={_num(delta[2] + delta[0])}",
                  f"above_threshold={int(view.infection_above_threshold[-1, -1, 0])}"]
        return ", ".join(parts)

    def describe_action(self, action: Any) -> str:
        a = int(np.asarray(action).item())
        return f"{a} ({('lower the stage', 'keep the stage', 'raise the stage')[a]})" if 0 <= a < 3 else str(a)


class TrafficNarrator:
    """The merge from its observation class: each occupied RL slot's speed, gap to and speed difference
    with its leader, the number of vehicles and their mean and lowest speed. The matching key is
    MergePOEnv's 5 normalised features per slot."""

    def __init__(self, description: Description, action_space: gym.Space) -> None:
        self.description = description

    def key(self, obs: Any, info: dict) -> np.ndarray:
        view = self.description.wrap(obs)
        return np.asarray(obs, dtype=np.float64)[: 5 * len(view.ego_speeds)]

    def describe_state(self, obs: Any, info: dict) -> str:
        view = self.description.wrap(obs)
        slots = [f"bus{i}(v={_num(view.ego_speeds[i])}, gap={_num(view.leader_headways[i])}, "
                 f"dv_leader={_num(view.leader_speed_diffs[i])})" for i in np.flatnonzero(view.present)]
        speeds = view.all_vehicle_speeds
        traffic = (f"vehicles={speeds.size}, mean_speed={_num(speeds.mean())}, min_speed={_num(speeds.min())}"
                   if speeds.size else "vehicles=0")
        return "; ".join([*slots, traffic] + (["collision"] if view.fail else []))

    def describe_action(self, action: Any) -> str:
        return "[" + ", ".join(_num(float(a)) for a in np.asarray(action).ravel()) + "]"
