import numpy as np


class TrafficObservation:
    """Traffic on a single-lane highway with an on-ramp merging into it (SUMO; Flow's merge network:
    100 m of highway before the merge, a 50 m ramp, 75 m after it). Human drivers enter the highway
    and the ramp continuously; buses enter from the ramp and are the RL-controlled vehicles: the first
    ${num_rl} buses in the network, in the order they entered, each take one entry of the action (slot i).
    One step is 1 second (5 simulation steps of 0.2 s with the action held). Empty slots hold zeros.

    ego_speeds           -- numpy array (${num_rl},): speed (m/s) of the RL vehicle in each slot
    leader_headways      -- numpy array (${num_rl},): bumper-to-bumper distance (m) to the vehicle ahead
                            (max_length when there is none)
    leader_speed_diffs   -- numpy array (${num_rl},): leader speed - ego speed (m/s) (leader speed = max_speed when none)
    follower_headways    -- numpy array (${num_rl},): bumper-to-bumper distance (m) from the vehicle behind
                            (max_length when there is none)
    follower_speed_diffs -- numpy array (${num_rl},): ego speed - follower speed (m/s) (follower speed 0 when none)
    has_leader           -- numpy array (${num_rl},) of bool: a vehicle is ahead of the slot's RL vehicle
    present              -- numpy array (${num_rl},) of bool: the slot holds an RL vehicle
    rl_ids               -- list of str: ids of the slots holding an RL vehicle ("rl_<slot>")
    all_vehicle_speeds   -- numpy array (n,): speed (m/s) of every vehicle in the network (n varies)
    ego_vehicle_accels   -- numpy array (${num_rl},): the accelerations (m/s^2) applied in the last step, one per
                            slot, clipped to [-1.5, 1.5] (zeros right after reset)
    fail                 -- True if a collision happened in the last step (the episode then ends)
    target_velocity      -- ${target_velocity} m/s: the velocity all vehicles should travel at
    max_speed            -- ${max_speed} m/s: the network's speed limit
    max_length           -- ${max_length} m: about the length of the network
    raw                  -- the raw vector: per slot (speed / max_speed, leader speed diff / max_speed,
                            leader headway / max_length, follower speed diff / max_speed,
                            follower headway / max_length), has_leader, present, applied accelerations,
                            fail, the number of vehicles, every vehicle's speed padded with -1
    """

    target_velocity = ${target_velocity}
    max_speed = ${max_speed}
    max_length = ${max_length}

    def __init__(self, raw):
        self.raw = np.asarray(raw, dtype=np.float64)
        n = ${num_rl}
        per = self.raw[: 5 * n].reshape(n, 5)
        self.ego_speeds = per[:, 0] * self.max_speed
        self.leader_speed_diffs = per[:, 1] * self.max_speed
        self.leader_headways = per[:, 2] * self.max_length
        self.follower_speed_diffs = per[:, 3] * self.max_speed
        self.follower_headways = per[:, 4] * self.max_length
        self.has_leader = self.raw[5 * n: 6 * n] > 0.5
        self.present = self.raw[6 * n: 7 * n] > 0.5
        self.rl_ids = [f"rl_{i}" for i in range(n) if self.present[i]]
        self.ego_vehicle_accels = self.raw[7 * n: 8 * n].copy()
        self.fail = bool(self.raw[8 * n] > 0.5)
        count = int(self.raw[8 * n + 1])
        self.all_vehicle_speeds = self.raw[8 * n + 2: 8 * n + 2 + count].copy()
