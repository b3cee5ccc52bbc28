import numpy as np


class Walker2dObservation:
    """One observation of MuJoCo Walker2d-v5: a planar biped (torso, and per leg a thigh, leg
    and foot) that should walk forward (+x). The torso's x position is not observed; velocities
    are clipped to [-10, 10]. The episode terminates when the torso height leaves (0.8, 2.0) or
    the torso angle leaves (-1, 1) rad; it is cut off after 1000 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.torso_height = float(raw[0])     # metres (starts at 1.25)
        self.torso_angle = float(raw[1])      # radians, 0 = upright
        self.right_joint_angles = self.raw[2:5]   # thigh, leg, foot (radians)
        self.left_joint_angles = self.raw[5:8]    # thigh, leg, foot (radians)
        self.torso_x_velocity = float(raw[8])     # forward velocity, m/s
        self.torso_z_velocity = float(raw[9])
        self.torso_angular_velocity = float(raw[10])
        self.right_joint_velocities = self.raw[11:14]
        self.left_joint_velocities = self.raw[14:17]
