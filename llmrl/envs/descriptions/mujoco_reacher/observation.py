import numpy as np


class ReacherObservation:
    """One observation of MuJoCo Reacher-v5: a two-link planar arm whose fingertip should
    reach a target drawn at reset (within 0.2 m of the base). No termination; every episode
    lasts 50 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.cos_joint_angles = self.raw[0:2]    # cos of the shoulder and elbow angles
        self.sin_joint_angles = self.raw[2:4]
        self.target_position = self.raw[4:6]     # (x, y) of the target, metres
        self.joint_velocities = self.raw[6:8]    # rad/s
        self.fingertip_to_target = self.raw[8:10]  # fingertip (x, y) minus target (x, y)
