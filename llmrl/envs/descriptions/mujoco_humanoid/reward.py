import numpy as np


def reward(prev_obs, action, next_obs, info):
    """1.25 * forward velocity + 5 while healthy - 0.1 * sum(ctrl^2) - min(5e-7 * sum(cfrc_ext^2), 10).

    info["x_velocity"]: the x displacement of the whole body's centre of mass over the step
    divided by the step time. Healthy after the step: 1.0 < torso height < 2.0.
    ctrl is the control the simulator applied (info["ctrl"], the action as given);
    info["cfrc_ext"] are the external contact forces on every body (the same as contact_forces)."""
    healthy = 1.0 < next_obs.torso_height < 2.0
    ctrl = 0.1 * np.sum(np.square(info["ctrl"]))
    contact = min(5e-7 * np.sum(np.square(info["cfrc_ext"])), 10.0)
    return float(1.25 * info["x_velocity"] + (5.0 if healthy else 0.0) - ctrl - contact)
