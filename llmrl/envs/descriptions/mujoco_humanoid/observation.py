import numpy as np


class HumanoidObservation:
    """One observation of MuJoCo Humanoid-v5: a 3-D humanoid (torso, abdomen, two arms, two
    legs; 17 actuated joints) that should walk forward (+x) without falling. The torso's x, y
    are not observed. The episode terminates when the torso height leaves (1.0, 2.0); it is
    cut off after 1000 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.torso_height = float(raw[0])
        self.torso_orientation = self.raw[1:5]        # quaternion (w, x, y, z)
        self.joint_angles = self.raw[5:22]            # 17 joints: abdomen (z, y, x), right hip (x, z, y), right knee, left hip (x, z, y), left knee, right shoulder (1, 2), right elbow, left shoulder (1, 2), left elbow
        self.torso_velocity = self.raw[22:25]         # (vx, vy, vz), m/s
        self.torso_angular_velocity = self.raw[25:28]
        self.joint_velocities = self.raw[28:45]       # same order as joint_angles
        self.body_inertias = self.raw[45:175].reshape(13, 10)      # per body after the world
        self.body_velocities = self.raw[175:253].reshape(13, 6)    # per body, centre-of-mass based
        self.actuator_forces = self.raw[253:270]                   # per joint
        self.contact_forces = self.raw[270:348].reshape(13, 6)     # external contact forces per body
