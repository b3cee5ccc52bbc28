"""The part of an SB3 training run that `model.save` leaves out, so a killed run resumes as if it
had never stopped: every random generator (Python, numpy, torch), the training envs mid-episode
(each wrapper's and the base env's attributes, the simulator state of MuJoCo envs, the emulator
of Atari envs), the vectorised env's buffers and the observation normaliser's running returns.

Taken where the training loop is between two rollouts (SB3's `on_rollout_start`), when nothing
half-collected is in flight; restored after the model is loaded, last, just before `learn`."""
from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from llmrl.counting import StepCounter
from llmrl.envs.restore import set_simulator_state, simulator_state

FILE = "training_state.pkl"
# Attributes rebuilt with the env, or restored another way (the simulator), never copied over.
SKIP = {"env", "model", "data", "mujoco_renderer", "renderer", "viewer", "_viewers", "ale", "spec", "_cached_spec",
        "metadata", "render_mode"}
VEC_BUFFERS = ("buf_obs", "buf_dones", "buf_rews", "buf_infos", "actions", "reset_infos", "_seeds", "_options")


def _layers(env) -> list:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def _picklable(value: Any) -> bool:
    if isinstance(value, StepCounter):
        return False  # shared by reference with the run; its value is the checkpoint's env_steps
    if getattr(value, "restored_by_owner", False):
        return False  # shared by several envs (a curriculum, a sandboxed guide): its owner saves and restores it
    try:
        pickle.dumps(value)
        return True
    except Exception:  # noqa: BLE001 - whatever cannot be pickled is rebuilt with the env
        return False


def env_state(env) -> list[dict[str, Any]]:
    """Per wrapper layer (outermost first): its own attributes, and the simulator's state."""
    out = []
    for layer in _layers(env):
        attrs = {k: v for k, v in vars(layer).items() if k not in SKIP and _picklable(v)}
        sim = simulator_state(layer)
        out.append({"type": type(layer).__name__, "attrs": pickle.dumps(attrs), "sim": sim})
    return out


def restore_env(env, state: list[dict[str, Any]]) -> None:
    layers = _layers(env)
    if [type(x).__name__ for x in layers] != [s["type"] for s in state]:
        raise ValueError("the training env is built differently from the checkpoint's; it cannot be resumed exactly")
    for layer, saved in zip(layers, state):
        vars(layer).update(pickle.loads(saved["attrs"]))
        if saved["sim"] is not None:
            set_simulator_state(layer, saved["sim"])


def _dummy(venv: VecEnv) -> DummyVecEnv:
    while isinstance(venv, VecEnvWrapper):
        venv = venv.venv
    if not isinstance(venv, DummyVecEnv):
        raise TypeError(f"exact resume needs a DummyVecEnv, not {type(venv).__name__}")
    return venv


def save(folder: Path, venv: VecEnv) -> None:
    dummy = _dummy(venv)
    state = {
        "python": random.getstate(), "numpy": np.random.get_state(), "torch": th.get_rng_state(),
        "envs": [env_state(e) for e in dummy.envs],
        "vec": {k: getattr(dummy, k) for k in VEC_BUFFERS if hasattr(dummy, k)},
    }
    with open(Path(folder) / FILE, "wb") as f:
        pickle.dump(state, f)


def restore(folder: Path, venv: VecEnv) -> bool:
    """Put the saved state back; False if the checkpoint has none (written before this existed)."""
    path = Path(folder) / FILE
    if not path.exists():
        return False
    with open(path, "rb") as f:
        state = pickle.load(f)
    dummy = _dummy(venv)
    for env, saved in zip(dummy.envs, state["envs"]):
        restore_env(env, saved)
    for k, v in state["vec"].items():
        setattr(dummy, k, v)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(state["torch"])
    return True
