import numpy as np


class PointMazeObservation:
    """What act(obs) receives: the environment's goal-conditioned observation, one numpy array
    (float64) per part.

    observation_vector -- shape (4,): [0] ball x position (m), [1] ball y position (m),
                          [2] ball x velocity (m/s), [3] ball y velocity (m/s), in the world frame
    desired_goal       -- shape (2,): [0] x, [1] y of the goal (the red target site) (m)
    achieved_goal      -- shape (2,): [0] x, [1] y of the ball now (m); the same as
                          observation_vector[0:2]
    raw                -- the raw vector: achieved_goal, desired_goal, observation_vector

    The goal and the ball's start are drawn at reset from valid cells of the maze, with uniform
    noise around the cell centres.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.achieved_goal = self.raw[0:2].copy()
        self.desired_goal = self.raw[2:4].copy()
        self.observation_vector = self.raw[4:8].copy()
