# include: ../_shared/metaworld_reward_utils.py


def reward(prev_obs, action, next_obs, info):
    """10 * closeness of the gripper's tool-centre point to the target: 10 within 5 cm,
    decaying with distance relative to the initial hand-to-target distance.
    info["tcp_center"]: tool-centre point (between the fingertips); info["target_pos"]: the
    target; info["hand_init_pos"]: the hand position at reset."""
    target = info["target_pos"]
    tcp_to_target = np.linalg.norm(info["tcp_center"] - target)
    margin = np.linalg.norm(info["hand_init_pos"] - target)
    return 10.0 * tolerance(tcp_to_target, 0.0, 0.05, margin)
