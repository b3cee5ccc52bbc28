import numpy as np


def reward(prev_obs, action, next_obs, info):
    """The reward-misspecification benchmark's true reward for the merge-with-buses task
    (commute, accel, headway with weights 1, 1, 0.1), 0 on the step of a collision:
      commute = -mean over every vehicle of 1 / (speed + 0.001)   (-10000 if the network is empty)
      accel   = -mean of |applied acceleration| over all ${num_rl} action entries
      headway = sum over RL vehicles with a leader and speed > 0 of min(headway / speed - 1, 0)
                (time headways under 1 s are penalised)"""
    if next_obs.fail:
        return 0.0
    speeds = next_obs.all_vehicle_speeds
    commute = -10000.0 if len(speeds) == 0 else -float(np.mean(1.0 / (speeds + 0.001)))
    accel = min(0.0, -float(np.mean(np.abs(next_obs.ego_vehicle_accels))))
    headway = 0.0
    for i in range(len(next_obs.ego_speeds)):
        speed = next_obs.ego_speeds[i]
        if next_obs.has_leader[i] and speed > 0:
            headway += min(max(next_obs.leader_headways[i] / speed, 0.0) - 1.0, 0.0)
    return 1.0 * commute + 1.0 * accel + 0.1 * headway
