import numpy as np


def reward(prev_obs, action, next_obs, info):
    """-distance(fingertip, target) after the step - sum(action^2).
    The fingertip and the target lie in the same plane, so the distance is the norm of
    fingertip_to_target."""
    return float(-np.linalg.norm(next_obs.fingertip_to_target) - np.sum(np.square(action)))
