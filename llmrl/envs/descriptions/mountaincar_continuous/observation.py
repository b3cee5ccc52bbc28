import numpy as np


class MountainCarContinuousObservation:
    """One observation of MountainCarContinuous-v0: the car-in-a-valley task with a continuous
    engine force. The episode terminates when position >= 0.45 and velocity >= 0 (the flag),
    and is cut off after 999 steps. The car starts in [-0.6, -0.4] at rest.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)
        self.position = float(raw[0])   # in [-1.2, 0.6]
        self.velocity = float(raw[1])   # in [-0.07, 0.07], positive = moving right
