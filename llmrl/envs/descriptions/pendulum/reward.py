import numpy as np


def reward(prev_obs, action, next_obs, info):
    """A cost of the state *before* the step and of the clipped torque:
    -(theta^2 + 0.1 * angular_velocity^2 + 0.001 * torque^2), theta in (-pi, pi]."""
    torque = float(np.clip(action[0], -2.0, 2.0))
    return -(prev_obs.theta**2 + 0.1 * prev_obs.angular_velocity**2 + 0.001 * torque**2)
