import numpy as np


def reward(prev_obs, action, next_obs, info):
    """forward velocity - 1e-4 * sum(action^2).
    info["x_velocity"]: the front tip's x displacement over the step divided by the step time."""
    return float(info["x_velocity"] - 1e-4 * np.sum(np.square(action)))
