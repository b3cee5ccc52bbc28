"""Type-1 diabetes insulin control on simglucose's UVA/Padova simulator core (patient, CGM
sensor, insulin pump, random meal scenario), wrapped as our own gymnasium env, shaped as PromptPO
runs its glucose task (the reward-misspecification benchmark's `bgp` simglucose env): 5-minute
steps, an observation of the last 4 hours (48 readings) of CGM, insulin and carbohydrate
histories plus whether the patient's episode has ended, actions in [0, 0.1], 20 days a run.

simglucose's own gym env pins gymnasium 0.29; only its simulator parts are used here, so it runs
beside gymnasium 1.4. The action (insulin, U/min) is held for the step's minutes, as simglucose's
own loop does. Reward: minus the Kovatchev blood-glucose risk index of the new CGM reading (the
reference's reward class is not published), computable from the observation.
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
        max_insulin: float = 0.1,
        step_minutes: int = 5,
        history: int = 48,
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
        self.step_minutes, self.history = int(step_minutes), int(history)
        self.action_space = gym.spaces.Box(0.0, max_insulin, shape=(1,), dtype=np.float64)
        # CGM (mg/dL), insulin delivered (U/min) and carbohydrates eaten (g/min) over the last `history`
        # steps, oldest first, -1 before the episode's start; then 1.0 if the episode has ended, else 0.0
        self.observation_space = gym.spaces.Box(-1.0, 1000.0, shape=(3 * self.history + 1,), dtype=np.float64)

    def _obs(self, terminated: bool) -> np.ndarray:
        def last(values):
            values = values[-self.history:]
            return [-1.0] * (self.history - len(values)) + values

        return np.array(last(self.cgm_hist) + last(self.insulin_hist) + last(self.cho_hist) + [float(terminated)])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        from simglucose.simulation.scenario_gen import RandomScenario

        s = [int(x) for x in self.np_random.integers(0, 2**31 - 1, size=3)]
        self.patient = self._make_patient(self._patient_name, random_init_bg=True, seed=s[0])
        self.sensor = self._make_sensor(self._sensor_name, seed=s[1])
        self.scenario = RandomScenario(start_time=self.start_time, seed=s[2])
        self.time = self.start_time
        bg = float(self.patient.observation.Gsub)
        self.cgm_hist = [float(self.sensor.measure(self.patient))]
        self.insulin_hist, self.cho_hist = [0.0], [0.0]
        return self._obs(False), {"bg": bg}

    def step(self, action):
        from simglucose.patient.t1dpatient import Action

        rate = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, self.action_space.high[0]))
        insulin = carbs = bg = cgm = 0.0
        for _ in range(self.step_minutes):  # one-minute patient steps, averaged over the step
            meal = self.scenario.get_action(self.time).meal
            delivered = self.pump.basal(rate)
            self.patient.step(Action(insulin=delivered, CHO=meal))
            self.time += timedelta(minutes=1)
            insulin += delivered / self.step_minutes
            carbs += meal / self.step_minutes
            bg += self.patient.observation.Gsub / self.step_minutes
            cgm += self.sensor.measure(self.patient) / self.step_minutes
        self.cgm_hist.append(float(cgm))
        self.insulin_hist.append(float(insulin))
        self.cho_hist.append(float(carbs))
        terminated = bool(bg < self.bg_low or bg > self.bg_high)
        reward = -risk_index(float(cgm))
        return self._obs(terminated), reward, terminated, False, {"bg": bg, "risk": -reward}
