def reward(prev_obs, action, next_obs, info):
    """-1 on every step that does not reach the goal height, 0 on the step that does."""
    return 0.0 if next_obs.tip_height() > 1.0 else -1.0
