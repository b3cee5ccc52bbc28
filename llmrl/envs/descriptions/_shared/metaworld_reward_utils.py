import numpy as np

# ---- shaping helpers used by Meta-World's rewards ---------------------------------------


def tolerance(x, lower, upper, margin):
    """1 inside [lower, upper]; outside, a long-tailed bump 1 / (1 + (3 d)^2) where d is the
    distance to the nearest bound divided by `margin` (so it is 0.1 at one margin away).
    With margin == 0 it is simply 1 inside and 0 outside."""
    if lower <= x <= upper:
        return 1.0
    if margin == 0:
        return 0.0
    d = (lower - x if x < lower else x - upper) / margin
    return 1.0 / ((3.0 * d) ** 2 + 1.0)


def hamacher_product(a, b):
    """A soft AND of two values in [0, 1]: a*b / (a + b - a*b), 0 when both are 0."""
    denominator = a + b - a * b
    return a * b / denominator if denominator > 0 else 0.0


def gripper_caging_reward(action, obj, info, obj_radius, pad_success_thresh, xz_thresh, high_density=False):
    """How well the two finger pads surround the object (along y) and the gripper centre is
    aligned with it (in x and z), combined with how hard the gripper closes (action[3]) once
    it is well placed. Uses info["left_pad"], info["right_pad"], info["tcp_center"],
    info["obj_init_pos"] and info["init_tcp"]."""
    pads_y = np.array([info["left_pad"][1], info["right_pad"][1]])
    pad_to_obj = np.abs(pads_y - obj[1])
    pad_to_obj_init = np.abs(pads_y - info["obj_init_pos"][1])
    margins = np.abs(pad_to_obj_init - pad_success_thresh)
    caging_y = hamacher_product(
        tolerance(pad_to_obj[0], obj_radius, pad_success_thresh, margins[0]),
        tolerance(pad_to_obj[1], obj_radius, pad_success_thresh, margins[1]),
    )
    xz = [0, 2]
    xz_margin = np.linalg.norm(info["obj_init_pos"][xz] - info["init_tcp"][xz]) - xz_thresh
    caging_xz = tolerance(np.linalg.norm(info["tcp_center"][xz] - obj[xz]), 0.0, xz_thresh, xz_margin)
    closed = min(max(0.0, action[-1]), 1.0)
    caging = hamacher_product(caging_y, caging_xz)
    gripping = closed if caging > 0.97 else 0.0
    result = hamacher_product(caging, gripping)
    if high_density:
        result = (result + caging) / 2.0
    return result
