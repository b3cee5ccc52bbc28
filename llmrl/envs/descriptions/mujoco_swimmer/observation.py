import numpy as np


class SwimmerObservation:
    """One observation of MuJoCo Swimmer-v5: a three-segment snake in viscous fluid that
    should swim forward (+x) by undulating its two joints. The tip's x, y are not observed.
    No termination; every episode lasts 1000 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.body_angle = float(raw[0])        # orientation of the front segment, radians
        self.joint_angles = self.raw[1:3]      # the two joints, radians
        self.tip_velocity = self.raw[3:5]      # (vx, vy) of the front tip, m/s
        self.body_angular_velocity = float(raw[5])
        self.joint_velocities = self.raw[6:8]
