# include: ../_shared/metaworld_reward_utils.py


def pick_place_caging(action, obj, info):
    """Pick-place's own caging term: each finger pad 1.5-5 cm from the puck along y, the
    gripper centre within 5 mm of it in x-z, and then the gripper closing.
    info: "left_pad"/"right_pad" now, "init_left_pad"/"init_right_pad" at reset."""
    left = tolerance(info["left_pad"][1] - obj[1], 0.015, 0.05,
                     abs(abs(obj[1] - info["init_left_pad"][1]) - 0.05))
    right = tolerance(obj[1] - info["right_pad"][1], 0.015, 0.05,
                      abs(abs(obj[1] - info["init_right_pad"][1]) - 0.05))
    xz = [0, 2]
    margin = np.linalg.norm(info["obj_init_pos"][xz] - info["init_tcp"][xz]) - 0.005
    xz_caging = tolerance(np.linalg.norm(info["tcp_center"][xz] - obj[xz]), 0.0, 0.005, margin)
    caging = hamacher_product(hamacher_product(left, right), xz_caging)
    gripping = min(max(0.0, action[-1]), 1.0) if caging > 0.97 else 0.0
    return (hamacher_product(caging, gripping) + caging) / 2.0


def reward(prev_obs, action, next_obs, info):
    """Grasp and carry: caging AND closeness of the puck to the target; a bonus once the
    puck is held (gripper at the puck, open reading > 0, lifted 1 cm above its start);
    10 once the puck is within 5 cm of the target."""
    obj = next_obs.object_position
    target = info["target_pos"]
    obj_to_target = np.linalg.norm(obj - target)
    tcp_to_obj = np.linalg.norm(obj - info["tcp_center"])
    in_place = tolerance(obj_to_target, 0.0, 0.05, np.linalg.norm(info["obj_init_pos"] - target))
    r = hamacher_product(pick_place_caging(action, obj, info), in_place)
    if tcp_to_obj < 0.02 and next_obs.gripper_opening > 0 and obj[2] - 0.01 > info["obj_init_pos"][2]:
        r += 1.0 + 5.0 * in_place
    if obj_to_target < 0.05:
        r = 10.0
    return r
