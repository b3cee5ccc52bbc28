import numpy as np


def reward(prev_obs, action, next_obs, info):
    """Minus the Kovatchev blood-glucose risk index of the newest CGM reading (next_obs.bg[-1]):
    f = 1.509 * (ln(cgm)^1.084 - 5.381); reward = -10 * f^2.
    0 at about 112 mg/dL, falling fast for hypoglycaemia and more slowly for hyperglycaemia."""
    f = 1.509 * (np.log(max(next_obs.bg[-1], 1.0)) ** 1.084 - 5.381)
    return -10.0 * f * f
