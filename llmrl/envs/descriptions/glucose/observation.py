import numpy as np


class GlucoseObservation:
    """One observation of the type-1 diabetes insulin-control task (UVA/Padova simulator,
    one virtual patient). One step is 3 minutes, an episode one day (480 steps). Meals arrive
    at random times (breakfast, lunch, dinner and possible snacks) and are not announced.
    Blood glucose in the safe range is about 70-180 mg/dL; the episode ends early if true
    blood glucose falls below 40 or rises above 600 mg/dL.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float32)
        self.cgm = float(raw[0])            # continuous glucose monitor reading, mg/dL (noisy)
        self.cgm_change = float(raw[1])     # change of the reading since the previous step, mg/dL
        self.insulin = float(raw[2])        # insulin rate delivered during the last step, U/min
        self.carbs = float(raw[3])          # carbohydrates eaten during the last step, g/min (averaged)
        self.hour = float(raw[4])           # time of day in hours, [0, 24)
