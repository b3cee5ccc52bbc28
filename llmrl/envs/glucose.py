"""Type-1 diabetes insulin control on simglucose's UVA/Padova simulator core (patient, CGM
sensor, insulin pump, random meal scenario), wrapped as our own gymnasium env.

simglucose's own gym env pins gymnasium 0.29; only its simulator parts are used here, so it runs
beside gymnasium 1.4. One step is one CGM sample period (3 min for the Dexcom sensor); the insulin
rate chosen is held for that period, as simglucose's own loop does. Reward: minus the Kovatchev
blood-glucose risk index of the new CGM reading, so the reward is computable from the observation.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import gymnasium as gym
import numpy as np

logging.getLogger("simglucose").setLevel(logging.WARNING)


def risk_index(bg: float) -> float:
    """Kovatchev's symmetrised risk of one blood-glucose value in mg/dL (0 near 112 mg/dL)."""
    f = 1.509 * (np.log(max(bg, 1.0)) ** 1.084 - 5.381)
    return float(10.0 * f * f)


class GlucoseEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        patient: str = "adolescent#001",
        sensor: str = "Dexcom",
        pump: str = "Insulet",
        max_insulin: float = 0.5,
        bg_low: float = 40.0,
        bg_high: float = 600.0,
        start_hour: int = 0,
    ) -> None:
        # Imported here: simglucose reads its parameter tables at import time.
        from simglucose.actuator.pump import InsulinPump
        from simglucose.patient.t1dpatient import T1DPatient
        from simglucose.sensor.cgm import CGMSensor

        self._patient_name = patient
        self._sensor_name = sensor
        self._make_patient = T1DPatient.withName
        self._make_sensor = CGMSensor.withName
        self.pump = InsulinPump.withName(pump)
        self.bg_low, self.bg_high = bg_low, bg_high
        self.start_time = datetime(2025, 1, 1, start_hour, 0, 0)
        self.sample_time = int(self._make_sensor(sensor, seed=0).sample_time)
        self.action_space = gym.spaces.Box(0.0, max_insulin, shape=(1,), dtype=np.float32)
        # cgm (mg/dL), cgm change over the last step, insulin rate delivered (U/min),
        # carbohydrate intake rate over the last step (g/min), hour of day.
        self.observation_space = gym.spaces.Box(
            low=np.array([0.0, -600.0, 0.0, 0.0, 0.0], dtype=np.float32),
            high=np.array([600.0, 600.0, max_insulin, 100.0, 24.0], dtype=np.float32),
            dtype=np.float32,
        )

    def _obs(self, cgm: float, prev_cgm: float, insulin: float, carbs: float) -> np.ndarray:
        hour = (self.time - datetime.combine(self.time.date(), datetime.min.time())).total_seconds() / 3600.0
        return np.array([cgm, cgm - prev_cgm, insulin, carbs, hour], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        from simglucose.simulation.scenario_gen import RandomScenario

        s = [int(x) for x in self.np_random.integers(0, 2**31 - 1, size=3)]
        self.patient = self._make_patient(self._patient_name, random_init_bg=True, seed=s[0])
        self.sensor = self._make_sensor(self._sensor_name, seed=s[1])
        self.scenario = RandomScenario(start_time=self.start_time, seed=s[2])
        self.time = self.start_time
        bg = float(self.patient.observation.Gsub)
        self.cgm = float(self.sensor.measure(self.patient))
        return self._obs(self.cgm, self.cgm, 0.0, 0.0), {"bg": bg}

    def step(self, action):
        from simglucose.patient.t1dpatient import Action

        rate = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, self.action_space.high[0]))
        insulin = carbs = bg = cgm = 0.0
        for _ in range(self.sample_time):  # one-minute patient steps, averaged over the period
            meal = self.scenario.get_action(self.time).meal
            delivered = self.pump.basal(rate)
            self.patient.step(Action(insulin=delivered, CHO=meal))
            self.time += timedelta(minutes=1)
            insulin += delivered / self.sample_time
            carbs += meal / self.sample_time
            bg += self.patient.observation.Gsub / self.sample_time
            cgm += self.sensor.measure(self.patient) / self.sample_time
        obs = self._obs(cgm, self.cgm, insulin, carbs)
        self.cgm = float(obs[0])
        reward = -risk_index(float(obs[0]))
        terminated = bool(bg < self.bg_low or bg > self.bg_high)
        return obs, reward, terminated, False, {"bg": bg, "risk": -reward}
