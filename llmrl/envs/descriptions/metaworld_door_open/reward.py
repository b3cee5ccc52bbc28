# include: ../_shared/metaworld_reward_utils.py


def reward(prev_obs, action, next_obs, info):
    """2 * (hand placed beside the handle, above a funnel-shaped floor) AND (gripper effort)
    + 8 * (door opening progress); 10 once the handle's x is within 8 cm of the target x.
    info["door_angle"]: the door hinge angle in radians (negative = opening);
    info["target_pos"]: where the handle ends when the door is open."""
    hand = next_obs.hand_position
    door = next_obs.object_position + np.array([-0.05, 0.0, 0.0])
    radius = np.linalg.norm(hand[:2] - door[:2])
    floor = 0.0 if radius <= 0.12 else 0.04 * np.log(radius - 0.12) + 0.4
    above_floor = 1.0 if hand[2] >= floor else tolerance(floor - hand[2], 0.0, 0.01, floor / 2.0)
    in_place = tolerance(np.linalg.norm(hand - door - np.array([0.05, 0.03, -0.01])), 0.0, 0.06, 0.5)
    ready_to_open = hamacher_product(above_floor, in_place)
    theta = info["door_angle"]
    opened = 0.2 * float(theta < -np.pi / 90.0) + 0.8 * tolerance(np.pi / 2.0 + np.pi / 6 + theta, 0.0, 0.5, np.pi / 3.0)
    grab = (np.clip(action[3], -1.0, 1.0) + 1.0) / 2.0
    r = 2.0 * hamacher_product(ready_to_open, grab) + 8.0 * opened
    if abs(next_obs.object_position[0] - info["target_pos"][0]) <= 0.08:
        r = 10.0
    return r
