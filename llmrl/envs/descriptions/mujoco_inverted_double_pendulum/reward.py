def reward(prev_obs, action, next_obs, info):
    """10 while alive - (0.01 * tip_x^2 + (tip_y - 2)^2) - (0.001 * w1^2 + 0.005 * w2^2).

    (tip_x, tip_y) is the position of the upper pole's tip after the step, from the simulator:
    info["site_xpos"][0][0] and info["site_xpos"][0][2] (x and height). Alive means tip_y > 1.
    w1, w2 are the unclipped pole angular velocities info["qvel"][1] and info["qvel"][2]."""
    tip = info["site_xpos"][0]
    x, y = float(tip[0]), float(tip[2])
    w1, w2 = float(info["qvel"][1]), float(info["qvel"][2])
    alive = 10.0 if y > 1.0 else 0.0
    return alive - (0.01 * x**2 + (y - 2.0) ** 2) - (1e-3 * w1**2 + 5e-3 * w2**2)
