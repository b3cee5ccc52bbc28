# include: ../_shared/metaworld_reward_utils.py


def reward(prev_obs, action, next_obs, info):
    """Staged: caging the puck with the fingers, then being at the puck with the gripper
    open and the puck near the target; 10 once the puck is within 5 cm of the target.
    info: "tcp_center", "target_pos", "obj_init_pos" (puck at reset), "init_tcp",
    "left_pad", "right_pad" (finger pad positions)."""
    obj = next_obs.object_position
    target = info["target_pos"]
    tcp_to_obj = np.linalg.norm(obj - info["tcp_center"])
    target_to_obj = np.linalg.norm(obj - target)
    in_place = tolerance(target_to_obj, 0.0, 0.05, np.linalg.norm(info["obj_init_pos"] - target))
    grasped = gripper_caging_reward(action, obj, info, obj_radius=0.015, pad_success_thresh=0.05,
                                    xz_thresh=0.005, high_density=True)
    r = 2.0 * grasped
    if tcp_to_obj < 0.02 and next_obs.gripper_opening > 0:
        r += 1.0 + r + 5.0 * in_place
    if target_to_obj < 0.05:
        r = 10.0
    return r
