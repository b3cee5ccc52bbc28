import numpy as np


class MetaWorldObservation:
    """One observation of a Meta-World MT1 task: a Sawyer arm with a two-finger gripper above
    a table (the task is stated at the top of this file). Positions are in metres in the world
    frame (x to the right, y away from the robot, z up). The arm is moved by position deltas;
    every episode lasts 500 steps, and success is reported in info["success"] (a policy should
    reach it and stay there).
    """

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.hand_position = self.raw[0:3]            # end-effector (x, y, z)
        self.gripper_opening = float(raw[3])          # 0 = fingers closed, 1 = wide open
        self.object_position = self.raw[4:7]          # the task's object (x, y, z), named at the top
        self.object_quaternion = self.raw[7:11]       # its orientation (w, x, y, z)
        # raw[11:18] would hold a second object; unused in these tasks (zeros).
        self.previous_hand_position = self.raw[18:21]     # the same quantities one step earlier
        self.previous_gripper_opening = float(raw[21])
        self.previous_object_position = self.raw[22:25]
        self.previous_object_quaternion = self.raw[25:29]
        self.goal_position = self.raw[36:39]          # the target position of the task (x, y, z)
