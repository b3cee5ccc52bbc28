"""Snapshots of a running env and their restore: the capability behind "start an episode from
this state" (RICE's mixed initial states, StateMask-R's critical-state restarts, ULTRA's
optional reset to LLM-identified states), and behind replaying an episode exactly.

A snapshot holds the simulator's own state, the state of every stateful wrapper between the
outer env and the simulator (the time limit's step count, Atari's frame stack and max-pool
buffer, the RAM wrapper's previous RAM), and the observation and info the env returned there.
Restoring it into any instance of the same env spec (not only the one it came from) makes
the next `step(a)` return exactly what the original's did. Families:

- `mujoco`: gymnasium's MuJoCo envs; MuJoCo's full integration state (`mj_getState` with
  `mjSTATE_INTEGRATION`: qpos, qvel, act, time, warm start, controls), which is more than
  `set_state(qpos, qvel)` and is what makes the next step bit-identical;
- `ale`: Atari through ale-py; `cloneState(include_rng=True)`, so sticky actions repeat too;
- `classic`: gymnasium's classic control (CartPole, Pendulum, MountainCar(Continuous), Acrobot);
- `own`: our envs that define `get_state()` / `set_state(state)` (NoiseWorld, the pandemic, and the traffic
  merge, which replays its episode in a fresh SUMO simulation).
Other envs (Meta-World keeps task state in Python objects; PointMaze's goal sampling) raise
`RestoreUnsupported` with the reason, before any training starts."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from llmrl.errors import ConfigError


class RestoreUnsupported(ConfigError):
    """The env cannot be snapshotted and restored; the message says which family it lacks."""


# Stateful wrappers, by class name, and the attributes that make their state.
WRAPPER_STATE = {
    "TimeLimit": ("_elapsed_steps",),
    "FrameStackObservation": ("obs_queue",),
    "AtariPreprocessing": ("obs_buffer", "lives", "game_over"),
    "AtariRamInfo": ("_prev",),
}
# Classic control envs and the attributes that hold their whole dynamic state.
CLASSIC_STATE = {
    "CartPoleEnv": ("state", "steps_beyond_terminated"),
    "PendulumEnv": ("state", "last_u"),
    "MountainCarEnv": ("state",),
    "Continuous_MountainCarEnv": ("state",),
    "AcrobotEnv": ("state",),
}


@dataclass
class EnvSnapshot:
    family: str
    sim: Any
    obs: Any
    info: dict = field(default_factory=dict)
    wrappers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # outermost first


def family(env: gym.Env) -> str:
    """Which restore family `env` belongs to; RestoreUnsupported if none."""
    u = env.unwrapped
    if callable(getattr(u, "get_state", None)) and callable(getattr(u, "set_state", None)) and not _is_mujoco(u):
        return "own"
    if _is_mujoco(u):
        if type(u).__module__.startswith("metaworld"):
            raise RestoreUnsupported(f"{type(u).__name__} (Meta-World) keeps task state outside MuJoCo's; state restore "
                                     f"supports gymnasium MuJoCo, Atari (ALE), classic control and envs with get_state/set_state")
        return "mujoco"
    if hasattr(u, "ale"):
        return "ale"
    if type(u).__name__ in CLASSIC_STATE:
        return "classic"
    raise RestoreUnsupported(f"{type(u).__name__} has no state restore: supported are gymnasium MuJoCo, Atari (ALE), "
                             f"classic control ({', '.join(sorted(CLASSIC_STATE))}) and envs defining get_state/set_state")


def _is_mujoco(u: Any) -> bool:
    return hasattr(u, "model") and hasattr(u, "data") and type(u.data).__name__ == "MjData"


def simulator_state(layer: Any) -> Any:
    """A MuJoCo env's integration state or an ALE env's emulator state (with its RNG), or
    None for a layer that holds neither."""
    data, model = getattr(layer, "data", None), getattr(layer, "model", None)
    if type(data).__name__ == "MjData":
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sim = np.empty(mujoco.mj_stateSize(model, spec), dtype=np.float64)
        mujoco.mj_getState(model, data, sim, spec)
        return sim
    if getattr(layer, "ale", None) is not None and hasattr(layer.ale, "cloneState"):
        return layer.ale.cloneState(include_rng=True)
    return None


def set_simulator_state(layer: Any, sim: Any) -> None:
    if type(getattr(layer, "data", None)).__name__ == "MjData":
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        if np.asarray(sim).size != mujoco.mj_stateSize(layer.model, spec):
            raise ValueError("the state comes from a different MuJoCo model")
        mujoco.mj_setState(layer.model, layer.data, sim, spec)
        mujoco.mj_forward(layer.model, layer.data)
    else:
        layer.ale.restoreState(sim)


def _chain(env: gym.Env) -> list[gym.Env]:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out


def snapshot(env: gym.Env, obs: Any, info: dict | None = None) -> EnvSnapshot:
    """The env's state now; `obs`/`info` are what its last reset/step returned."""
    fam = family(env)
    u = env.unwrapped
    if fam in ("mujoco", "ale"):
        sim = simulator_state(u)
    elif fam == "classic":
        sim = {k: copy.deepcopy(getattr(u, k)) for k in CLASSIC_STATE[type(u).__name__]}
    else:
        sim = copy.deepcopy(u.get_state())
    wrappers = [(type(w).__name__, {k: copy.deepcopy(getattr(w, k)) for k in WRAPPER_STATE[type(w).__name__] if hasattr(w, k)})
                for w in _chain(env) if type(w).__name__ in WRAPPER_STATE]
    return EnvSnapshot(fam, sim, copy.deepcopy(obs), copy.deepcopy(dict(info or {})), wrappers)


def restore(env: gym.Env, snap: EnvSnapshot) -> tuple[Any, dict]:
    """Put `env` (reset at least once) into `snap`'s state; returns the observation and info
    the env had there, which is what the agent acts on next."""
    fam = family(env)
    if fam != snap.family:
        raise ValueError(f"a {snap.family} snapshot cannot be restored into a {fam} env")
    u = env.unwrapped
    if fam in ("mujoco", "ale"):
        set_simulator_state(u, snap.sim)
    elif fam == "classic":
        for k, v in snap.sim.items():
            setattr(u, k, copy.deepcopy(v))
    else:
        u.set_state(copy.deepcopy(snap.sim))
    chain = [w for w in _chain(env) if type(w).__name__ in WRAPPER_STATE]
    if [type(w).__name__ for w in chain] != [name for name, _ in snap.wrappers]:
        raise ValueError(f"the snapshot's wrappers {[n for n, _ in snap.wrappers]} differ from this env's "
                         f"{[type(w).__name__ for w in chain]}: restore into an env built from the same spec")
    for w, (_, attrs) in zip(chain, snap.wrappers):
        for k, v in attrs.items():
            setattr(w, k, copy.deepcopy(v))
    return copy.deepcopy(snap.obs), copy.deepcopy(snap.info)
