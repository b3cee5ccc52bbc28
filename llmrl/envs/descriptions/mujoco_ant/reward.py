import numpy as np


def reward(prev_obs, action, next_obs, info):
    """forward velocity + 1 while healthy - 0.5 * sum(action^2) - 5e-4 * sum(contact_forces^2).
    info["x_velocity"]: the torso's x displacement over the step divided by the step time.
    Healthy after the step: 0.2 <= torso height <= 1.0 (and a finite state). The contact
    forces are the clipped ones in the observation."""
    healthy = 0.2 <= next_obs.torso_height <= 1.0 and bool(np.isfinite(next_obs.raw).all())
    ctrl = 0.5 * np.sum(np.square(action))
    contact = 5e-4 * np.sum(np.square(next_obs.contact_forces))
    return float(info["x_velocity"] + (1.0 if healthy else 0.0) - ctrl - contact)
