import numpy as np


def reward(prev_obs, action, next_obs, info):
    """forward velocity + 1 while healthy - 0.001 * sum(action^2).
    info["x_velocity"]: the torso's x displacement over the step divided by the step time.
    Healthy after the step: 0.8 < torso height < 2.0 and -1 < torso angle < 1."""
    healthy = 0.8 < next_obs.torso_height < 2.0 and -1.0 < next_obs.torso_angle < 1.0
    return float(info["x_velocity"] + (1.0 if healthy else 0.0) - 1e-3 * np.sum(np.square(action)))
