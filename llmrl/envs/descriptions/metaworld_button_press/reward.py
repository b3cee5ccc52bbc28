# include: ../_shared/metaworld_reward_utils.py


def reward(prev_obs, action, next_obs, info):
    """2 * (gripper opening reading AND tool-centre point near the button), plus, once within
    5 cm of the button, 8 * how far the button is pressed in.
    info: "tcp_center", "init_tcp", "target_pos" (button fully pressed), "obj_to_target_init"
    (the button's travel at reset)."""
    button = next_obs.object_position
    tcp = info["tcp_center"]
    tcp_to_button = np.linalg.norm(button - tcp)
    near = tolerance(tcp_to_button, 0.0, 0.05, np.linalg.norm(button - info["init_tcp"]))
    pressed = tolerance(abs(info["target_pos"][1] - button[1]), 0.0, 0.005, info["obj_to_target_init"])
    r = 2.0 * hamacher_product(max(next_obs.gripper_opening, 0.0), near)
    if tcp_to_button <= 0.05:
        r += 8.0 * pressed
    return r
