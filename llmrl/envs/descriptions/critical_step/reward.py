def reward(prev_obs, action, next_obs, info):
    """+1 per step, except 0 for action 0 at the gate (which also ends the episode)."""
    return 0.0 if info.get("failed") else 1.0
