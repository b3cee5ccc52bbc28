import numpy as np


class PointMazeObservation:
    """One observation of PointMaze Large (gymnasium-robotics): a force-actuated ball in a
    walled maze of 1 m cells (9 rows x 12 columns, outer walls included), centred on (0, 0).
    A goal position is drawn at reset; the episode ends when the ball is within 0.45 m of it,
    or after 800 steps. Positions are in metres, x to the right, y upwards.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.achieved_goal = self.raw[0:2]   # current ball position (x, y)
        self.desired_goal = self.raw[2:4]    # goal position (x, y)
        self.position = self.raw[4:6]        # ball position (x, y), same as achieved_goal
        self.velocity = self.raw[6:8]        # ball velocity (vx, vy) in m/s

    def distance_to_goal(self) -> float:
        return float(np.linalg.norm(self.achieved_goal - self.desired_goal))
