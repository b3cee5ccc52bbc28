import numpy as np


class AcrobotObservation:
    """One observation of Acrobot-v1: two links in a chain hanging from a fixed pivot; only the
    joint between the links is actuated. theta1 is the angle of the first link from straight
    down, theta2 the angle of the second link relative to the first.

    The episode terminates when the free end rises above the bar, i.e. when
    -cos(theta1) - cos(theta1 + theta2) > 1.0, and is cut off after 500 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)
        self.cos_theta1 = float(raw[0])
        self.sin_theta1 = float(raw[1])
        self.cos_theta2 = float(raw[2])
        self.sin_theta2 = float(raw[3])
        self.theta1_velocity = float(raw[4])   # rad/s, in [-4*pi, 4*pi]
        self.theta2_velocity = float(raw[5])   # rad/s, in [-9*pi, 9*pi]

    def tip_height(self) -> float:
        """Height of the free end above the pivot, in link lengths; > 1.0 ends the episode."""
        cos_sum = self.cos_theta1 * self.cos_theta2 - self.sin_theta1 * self.sin_theta2
        return -self.cos_theta1 - cos_sum
