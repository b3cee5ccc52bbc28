"""Wrappers named from `conf/env/*.yaml` (`wrappers:` list). They add to `info` the simulator
state a reward source needs but the observation lacks, and adapt observations for RL."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class StateInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Base: merge `self._state()` into the info of every reset and step."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def _state(self) -> dict:
        raise NotImplementedError

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, **self._state()}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, **self._state()}



class MujocoStateInfo(StateInfo):
    """Puts the full simulator state into `info` after each step: `qpos`, `qvel` (unclipped),
    `cfrc_ext` (external contact forces), `ctrl` and `site_xpos`. The observation drops the
    root position and clips velocities, so a reward written from it alone could not be exact."""

    def _state(self) -> dict:
        data = self.env.unwrapped.data
        return {
            "qpos": data.qpos.copy(),
            "qvel": data.qvel.copy(),
            "cfrc_ext": data.cfrc_ext.copy(),
            "ctrl": data.ctrl.copy(),
            "site_xpos": data.site_xpos.copy(),
        }


# Pong keeps the scores in RAM: byte 13 is the computer's, byte 14 the player's.
PONG_RAM_OPPONENT_SCORE = 13
PONG_RAM_PLAYER_SCORE = 14


class AtariRamInfo(StateInfo):
    """Adds the console RAM after the step (`ram`) and before it (`prev_ram`) to `info`; the
    narration of ULTRA and Pong's reward source read positions and scores from it. Sits above
    frame skipping, so `prev_ram` is the state before the whole (skipped) agent step."""

    def _ram(self) -> np.ndarray:
        return self.env.unwrapped.ale.getRAM().copy()

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._prev = self._ram()
        return obs, {**info, "ram": self._prev.copy(), "prev_ram": self._prev.copy()}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        ram = self._ram()
        info = {**info, "ram": ram, "prev_ram": self._prev}
        self._prev = ram
        return obs, reward, terminated, truncated, info


class AtariPreprocessed(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The standard Atari pipeline for RL (Mnih et al. 2015; Machado et al. 2018): no-op starts,
    frame skip 4 with max-pooling, 84x84 grayscale, a stack of the last 4 frames. Observation:
    uint8 array (4, 84, 84), channels first."""

    def __init__(self, env: gym.Env, frame_skip: int = 4, screen_size: int = 84, noop_max: int = 30, stack: int = 4):
        gym.utils.RecordConstructorArgs.__init__(
            self, frame_skip=frame_skip, screen_size=screen_size, noop_max=noop_max, stack=stack
        )
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size, grayscale_obs=True
        )
        env = gym.wrappers.FrameStackObservation(env, stack_size=stack)
        super().__init__(env)


class MetaWorldStateInfo(StateInfo):
    """Adds to `info` the task state Meta-World's rewards read but its observation hides: the
    target position (MT1 zeroes the goal part of the observation), the initial object and
    gripper positions, the gripper's tool-centre point and finger pads, and task extras."""

    def _state(self) -> dict:
        u = self.env.unwrapped
        state = {
            "tcp_center": np.array(u.tcp_center, dtype=np.float64),
            "target_pos": None if u._target_pos is None else np.array(u._target_pos, dtype=np.float64),
            "obj_init_pos": None if u.obj_init_pos is None else np.array(u.obj_init_pos, dtype=np.float64),
            "init_tcp": np.array(u.init_tcp, dtype=np.float64),
            "hand_init_pos": np.array(u.hand_init_pos, dtype=np.float64),
            "left_pad": np.array(u.get_body_com("leftpad"), dtype=np.float64),
            "right_pad": np.array(u.get_body_com("rightpad"), dtype=np.float64),
        }
        for name in ("init_left_pad", "init_right_pad"):
            if getattr(u, name, None) is not None:
                state[name] = np.array(getattr(u, name), dtype=np.float64)
        if hasattr(u, "maxDist"):
            state["max_dist"] = float(u.maxDist)
        if hasattr(u, "_obj_to_target_init"):
            state["obj_to_target_init"] = float(u._obj_to_target_init)
        if "doorjoint" in [u.model.joint(i).name for i in range(u.model.njnt)]:
            state["door_angle"] = float(u.data.joint("doorjoint").qpos.item())
        return state


class MetaWorldFixes(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Two quirks of Meta-World 3.1.1's MT1 envs, corrected so runs are checkable and repeatable:
    - the goal position is in observation[36:39], but `observation_space` declares those entries
      as [0, 0] (built while the goal was hidden); here they get the goal's true bounds;
    - the task variation is drawn on reset *before* the reset seed is applied, so reset(seed=s)
      does not repeat; here the draw uses an RNG seeded with s."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        goal = env.unwrapped.goal_space
        low, high = space.low.copy(), space.high.copy()
        low[36:39], high[36:39] = goal.low, goal.high
        self.observation_space = gym.spaces.Box(low, high, dtype=space.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.env.unwrapped.np_random = gym.utils.seeding.np_random(seed)[0]
        return super().reset(seed=seed, options=options)

    def observation(self, observation):
        return observation


class SparseForwardReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The sparse MuJoCo setting of RICE (Cheng et al., ICML 2024), used by ULTRA: the env's
    reward is paid only on steps that end with the root's x position (qpos[0]) past
    `threshold` metres, and is 0 before it, so the agent must first learn to move forward far
    enough to see any reward. `info["dense_reward"]` keeps the original for diagnostics."""

    def __init__(self, env: gym.Env, threshold: float) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, threshold=threshold)
        gym.Wrapper.__init__(self, env)
        self.threshold = float(threshold)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        x = float(self.env.unwrapped.data.qpos[0])
        return obs, (float(reward) if x > self.threshold else 0.0), terminated, truncated, {**info, "dense_reward": reward}
