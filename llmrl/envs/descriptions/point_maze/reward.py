import numpy as np


def reward(prev_obs, action, next_obs, info):
    """Sparse: 1 when the ball ends the step within 0.45 m of the goal, else 0."""
    return 1.0 if np.linalg.norm(next_obs.achieved_goal - next_obs.desired_goal) <= 0.45 else 0.0
