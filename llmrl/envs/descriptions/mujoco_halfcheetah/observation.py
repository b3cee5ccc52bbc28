import numpy as np


class HalfCheetahObservation:
    """One observation of MuJoCo HalfCheetah-v5: a planar two-legged "cheetah" (back and front
    leg, each thigh, shin, foot) that should run forward (+x). The x position is not observed.
    No termination; every episode lasts 1000 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.torso_z = float(raw[0])              # height of the front tip, metres
        self.torso_angle = float(raw[1])          # pitch, radians
        self.back_joint_angles = self.raw[2:5]    # back thigh, shin, foot (radians)
        self.front_joint_angles = self.raw[5:8]   # front thigh, shin, foot (radians)
        self.x_velocity = float(raw[8])           # forward velocity of the tip, m/s
        self.z_velocity = float(raw[9])
        self.angular_velocity = float(raw[10])
        self.back_joint_velocities = self.raw[11:14]
        self.front_joint_velocities = self.raw[14:17]
