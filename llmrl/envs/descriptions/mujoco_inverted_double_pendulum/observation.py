import numpy as np


class InvertedDoublePendulumObservation:
    """One observation of MuJoCo InvertedDoublePendulum-v5: a cart on a rail carrying two
    poles hinged in a chain; keep them balanced upright. The episode terminates when the tip
    of the upper pole drops to a height of 1 m or below (fully upright it is near 1.2 m); it is
    cut off after 1000 steps. Velocities are clipped to [-10, 10].
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.cart_position = float(raw[0])        # metres along the rail
        self.sin_pole_angles = self.raw[1:3]      # lower pole from vertical, upper pole relative to the lower
        self.cos_pole_angles = self.raw[3:5]
        self.cart_velocity = float(raw[5])
        self.pole_angular_velocities = self.raw[6:8]
        self.constraint_force = float(raw[8])     # on the cart, clipped to [-10, 10]
