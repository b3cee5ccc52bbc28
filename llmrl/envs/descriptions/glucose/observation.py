import numpy as np


class GlucoseObservation:
    """Type-1 diabetes insulin control (UVA/Padova simulator, one virtual patient). One step is
    5 minutes. Observations are stochastic: they hold the continuous glucose monitor (CGM)
    readings and the insulin administered; to give temporal context they cover the previous
    4 hours (48 steps) at 5-minute resolution. Meals arrive at random times and are not announced.

    bg            -- numpy array (48,): CGM readings (blood glucose, mg/dL), oldest first
    insulin       -- numpy array (48,): insulin administered per step (U/min), oldest first
    cho           -- numpy array (48,): carbohydrates eaten per step (g/min), oldest first
                     (each history is padded with -1 where the episode is younger than 4 hours)
    is_terminated -- True if the patient has died (the episode has ended), False while alive
    raw           -- the raw vector: bg, insulin, cho, is_terminated
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        h = (len(self.raw) - 1) // 3
        self.bg = self.raw[0:h].copy()
        self.insulin = self.raw[h:2 * h].copy()
        self.cho = self.raw[2 * h:3 * h].copy()
        self.is_terminated = bool(self.raw[-1] > 0.5)
