# A hand-written guide for Hopper-v5 (env=mujoco_hopper): a posture controller, not a hopper. The
# thigh joint corrects the torso's pitch, every joint is pulled back to its zero angle with damping,
# and the foot helps the torso; torques clipped to [-1, 1]. It stands for all 1000 steps (return
# about 1000, the alive bonus, with no forward progress): the level PPO reaches at the zoo's settings.
# Gains picked by a small grid search over standing time. Check it:
#   python scripts/evaluate_policy.py examples/guides/hopper_posture.py env=mujoco_hopper
import numpy as np
from observations import HopperObservation

TORSO_P, TORSO_D, JOINT_P, JOINT_D = 1.0, 0.1, 6.0, 0.3


class HopperPolicy:
    def act(self, obs: HopperObservation) -> np.ndarray:
        torso = TORSO_P * obs.torso_angle + TORSO_D * obs.torso_angular_velocity
        action = np.array([
            torso - JOINT_P * obs.thigh_angle - JOINT_D * obs.thigh_angular_velocity,
            -JOINT_P * obs.leg_angle - JOINT_D * obs.leg_angular_velocity,
            0.5 * torso - JOINT_P * obs.foot_angle - JOINT_D * obs.foot_angular_velocity,
        ])
        return np.clip(action, -1.0, 1.0)
