def reward(prev_obs, action, next_obs, info):
    """+100 on reaching the flag (position >= 0.45 with velocity >= 0), minus 0.1 x force^2
    on every step (the force as given, before clipping)."""
    r = 100.0 if (next_obs.position >= 0.45 and next_obs.velocity >= 0.0) else 0.0
    return r - 0.1 * float(action[0]) ** 2
