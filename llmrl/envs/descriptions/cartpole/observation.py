import numpy as np


class CartPoleObservation:
    """One observation of CartPole-v1: a cart on a frictionless track carrying a hinged pole.

    The episode ends (terminates) when |pole_angle| > 0.2095 rad (12 degrees) or
    |cart_position| > 2.4, and is cut off after 500 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)   # the 4-vector the environment returned
        self.cart_position = float(raw[0])             # metres from the track centre, in [-4.8, 4.8]
        self.cart_velocity = float(raw[1])             # metres per second, unbounded
        self.pole_angle = float(raw[2])                # radians from upright, positive = leaning right
        self.pole_angular_velocity = float(raw[3])     # radians per second, unbounded
