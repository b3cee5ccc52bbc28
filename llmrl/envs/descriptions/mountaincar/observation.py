import numpy as np


class MountainCarObservation:
    """One observation of MountainCar-v0: a car in a valley between two hills, whose engine
    is too weak to climb the right hill directly; it must rock back and forth to gain momentum.

    The episode terminates when position >= 0.5 (the flag on the right hill top) and is cut off
    after 200 steps. The car starts at a random position in [-0.6, -0.4] with zero velocity.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)
        self.position = float(raw[0])   # along the track, in [-1.2, 0.6]; the valley bottom is near -0.52
        self.velocity = float(raw[1])   # in [-0.07, 0.07], positive = moving right
