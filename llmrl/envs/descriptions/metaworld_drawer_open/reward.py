# include: ../_shared/metaworld_reward_utils.py


def reward(prev_obs, action, next_obs, info):
    """5 * (hand caging the handle + handle at the open position).
    info["target_pos"]: handle position when the drawer is fully open; info["max_dist"]:
    how far the drawer opens (0.2 m); info["init_tcp"]: tool-centre point at reset.
    The caging error weighs x and y three times more than z, so the hand can come down
    onto the handle from above."""
    hand = next_obs.hand_position
    handle = next_obs.object_position
    target, max_dist = info["target_pos"], info["max_dist"]
    opening = tolerance(np.linalg.norm(handle - target), 0.0, 0.02, max_dist)
    handle_start = target + np.array([0.0, max_dist, 0.0])
    scale = np.array([3.0, 3.0, 1.0])
    caging = tolerance(np.linalg.norm((handle - hand) * scale), 0.0, 0.01,
                       np.linalg.norm((handle_start - info["init_tcp"]) * scale))
    return 5.0 * (caging + opening)
