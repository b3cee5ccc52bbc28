import numpy as np


def reward(prev_obs, action, next_obs, info):
    """Sparse: 1.0 on a step that ends with the ball within 0.45 m of the goal, else 0.0. Reaching
    the goal ends the episode, so an episode shorter than the time limit, and a return of 1, mean
    the task was solved."""
    return 1.0 if np.linalg.norm(next_obs.achieved_goal - next_obs.desired_goal) <= 0.45 else 0.0
