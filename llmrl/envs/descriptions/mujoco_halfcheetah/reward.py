import numpy as np


def reward(prev_obs, action, next_obs, info):
    """forward velocity - 0.1 * sum(action^2).
    info["x_velocity"]: the x displacement over the step divided by the step time."""
    return float(info["x_velocity"] - 0.1 * np.sum(np.square(action)))
