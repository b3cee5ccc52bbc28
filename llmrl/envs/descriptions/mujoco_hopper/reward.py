import numpy as np


def reward(prev_obs, action, next_obs, info):
    """forward velocity + 1 while healthy - 0.001 * sum(action^2).

    info["x_velocity"]: the torso's x displacement over the step divided by the step time.
    Healthy (checked after the step) uses the unclipped simulator state in info["qpos"]
    (x, z, angle, 3 joints) and info["qvel"]: 0.7 < z, -0.2 < angle < 0.2, and every entry
    of (qpos, qvel) after the first two strictly inside (-100, 100)."""
    qpos, qvel = info["qpos"], info["qvel"]
    state = np.concatenate([qpos, qvel])[2:]
    healthy = bool(np.all((state > -100.0) & (state < 100.0)) and qpos[1] > 0.7 and -0.2 < qpos[2] < 0.2)
    return float(info["x_velocity"] + (1.0 if healthy else 0.0) - 1e-3 * np.sum(np.square(action)))
