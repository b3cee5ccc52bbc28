import numpy as np


class CriticalStepObservation:
    """One observation of the critical-step corridor: 20 steps, each paying +1, except that at
    step 10 action 0 ends the episode with reward 0 (action 1 goes on). The episode ends after
    step 19 or at that failure."""

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)   # the 2-vector the environment returned
        self.progress = float(raw[0])                  # step number / 19, from 0 to 1
        self.at_gate = float(raw[1])                   # 1.0 at step 10 (where action 0 fails), else 0.0
