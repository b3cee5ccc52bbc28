# A hand-written linear guide for Pendulum-v1 (env=pendulum): torque against the angle from upright
# (through its sine) and against the angular velocity, clipped to [-2, 2]. It holds the pendulum up
# when it starts near the top and cannot swing it up from below. Check it:
#   python scripts/evaluate_policy.py examples/guides/pendulum_linear.py env=pendulum
import numpy as np
from observations import PendulumObservation

K_ANGLE, K_VELOCITY = 10.0, 2.0


class PendulumPolicy:
    def act(self, obs: PendulumObservation) -> np.ndarray:
        torque = -K_ANGLE * obs.sin_theta - K_VELOCITY * obs.angular_velocity
        return np.array([np.clip(torque, -2.0, 2.0)])
