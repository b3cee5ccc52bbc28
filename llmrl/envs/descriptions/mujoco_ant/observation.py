import numpy as np


class AntObservation:
    """One observation of MuJoCo Ant-v5: a 3-D quadruped (torso and four legs, each with a hip
    and an ankle joint) that should walk forward (+x). The torso's x and y are not observed.
    The episode terminates when the torso height leaves [0.2, 1.0] (or the state is not
    finite); it is cut off after 1000 steps.
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.torso_height = float(raw[0])              # metres
        self.torso_orientation = self.raw[1:5]         # quaternion (w, x, y, z)
        self.joint_angles = self.raw[5:13]             # hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3, hip_4, ankle_4
        self.torso_velocity = self.raw[13:16]          # (vx, vy, vz), m/s
        self.torso_angular_velocity = self.raw[16:19]
        self.joint_velocities = self.raw[19:27]        # same order as joint_angles
        # External contact forces on the 13 bodies after the torso... (6 numbers per body:
        # torque then force), each clipped to [-1, 1].
        self.contact_forces = self.raw[27:105].reshape(13, 6)
