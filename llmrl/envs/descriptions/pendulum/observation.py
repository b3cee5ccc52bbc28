import numpy as np


class PendulumObservation:
    """One observation of Pendulum-v1: a pendulum on a motorised pivot, starting at a random
    angle and velocity. The goal is to swing it up and keep it upright (angle 0). No
    termination; every episode lasts 200 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)
        self.cos_theta = float(raw[0])          # cos of the angle from upright
        self.sin_theta = float(raw[1])          # sin of the angle from upright
        self.angular_velocity = float(raw[2])   # rad/s, in [-8, 8]

    @property
    def theta(self) -> float:
        """Angle from upright in (-pi, pi]."""
        return float(np.arctan2(self.sin_theta, self.cos_theta))
