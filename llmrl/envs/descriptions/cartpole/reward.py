def reward(prev_obs, action, next_obs, info):
    """+1 for every step taken, including the step on which the pole falls.
    The return of an episode is therefore its length (at most 500)."""
    return 1.0
