# include: ../mujoco_halfcheetah/reward.py
dense_reward = reward

X_THRESHOLD = 5  # metres along +x


def reward(prev_obs, action, next_obs, info):
    """Sparse: the dense reward above, but only on steps that end with the root's x position
    (info["qpos"][0], after the step) beyond X_THRESHOLD; 0 otherwise."""
    return float(dense_reward(prev_obs, action, next_obs, info)) if info["qpos"][0] > X_THRESHOLD else 0.0
