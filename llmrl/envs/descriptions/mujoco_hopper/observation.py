import numpy as np


class HopperObservation:
    """One observation of MuJoCo Hopper-v5: a planar one-legged robot (torso, thigh, leg, foot)
    that should hop forward (+x). The torso's x position is not observed. Velocities are
    clipped to [-10, 10]. The episode terminates when the hopper is unhealthy: torso height
    <= 0.7, |torso angle| >= 0.2 rad, or any joint position/velocity (excluding x and height)
    outside (-100, 100); it is cut off after 1000 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.torso_height = float(raw[0])        # z of the torso, metres (starts at 1.25)
        self.torso_angle = float(raw[1])         # pitch of the torso, radians, 0 = upright
        self.thigh_angle = float(raw[2])         # joint angles, radians
        self.leg_angle = float(raw[3])
        self.foot_angle = float(raw[4])
        self.torso_x_velocity = float(raw[5])    # forward velocity of the torso, m/s
        self.torso_z_velocity = float(raw[6])    # vertical velocity, m/s
        self.torso_angular_velocity = float(raw[7])
        self.thigh_angular_velocity = float(raw[8])
        self.leg_angular_velocity = float(raw[9])
        self.foot_angular_velocity = float(raw[10])
