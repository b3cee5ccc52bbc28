"""A do-nothing traffic policy: asks every RL bus for zero acceleration (it then holds its speed until the
simulator slows it for safety, and never speeds up again).
python scripts/evaluate_policy.py examples/realworld/zero_accel.py env=traffic_merge"""
import numpy as np


class TrafficPolicy:
    def act(self, obs):
        return np.zeros(len(obs.ego_speeds), dtype=np.float32)
