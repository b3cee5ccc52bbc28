"""Registers gymnasium ids on first use. Third-party suites are imported only when an env of
theirs is asked for: importing Meta-World or ALE costs seconds a CartPole run should not pay."""
from __future__ import annotations

import importlib

import gymnasium as gym

# Our own environments, registered under the `llmrl/` namespace.
OWN_ENVS = {
    "llmrl/NoiseWorld-v0": "llmrl.envs.noise_world:NoiseWorldEnv",
    "llmrl/Glucose-v0": "llmrl.envs.glucose:GlucoseEnv",
    "llmrl/CriticalStep-v0": "llmrl.envs.critical_step:CriticalStepEnv",
    "llmrl/Pandemic-v0": "llmrl.envs.pandemic:PandemicEnv",
    "llmrl/TrafficMerge-v0": "llmrl.envs.traffic_merge:TrafficMergeEnv",
}

# gymnasium id prefix -> module whose import registers it.
SUITES = {
    "Meta-World/": "metaworld",
    "ALE/": "ale_py",
    "PointMaze": "gymnasium_robotics",
    "AntMaze": "gymnasium_robotics",
}


def ensure_registered(gym_id: str) -> None:
    """Make `gym.make(gym_id)` work, importing the suite that provides it if needed."""
    if gym_id in gym.registry:
        return
    if gym_id in OWN_ENVS:
        gym.register(id=gym_id, entry_point=OWN_ENVS[gym_id])
        return
    for prefix, module in SUITES.items():
        if gym_id.startswith(prefix):
            mod = importlib.import_module(module)
            if module in ("ale_py", "gymnasium_robotics"):
                gym.register_envs(mod)
            return
