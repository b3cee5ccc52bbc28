"""The observation objects and imports LLM code gets in the sandbox.

`ours`: the env description's observation class (llmrl/envs/descriptions/<env>/observation.py).
`reference`: what the policies PromptPO's authors published were written against (facts from
Stephanehk/PromptPO `observations/`): the same object under the reference's class name, plus
`obs_vector` (the raw observation; MuJoCo and Meta-World) and, for MuJoCo, the full `qpos` and
`qvel` (root x included), `dt`, `root_x_position`, `observation_structure` and `state_vector()`,
which the evaluator sends along with each observation.

Either way, the imports such code starts with resolve inside the sandbox to these classes:
`from observations import X` (this project's starter code), `from direct_policy_learning.observations
import X` and its per-class submodules, `from bgp.simglucose.envs.glucose_obs_wrapper import X`, and the
pandemic's and traffic's module paths (`from pandemic.python.pandemic_simulator.environment.interfaces import X`,
`from flow_reward_misspecification.flow.envs.traffic_obs_wrapper import X`). Besides the observation class, the
names a description's observation.py lists in `__all__` (the pandemic's InfectionSummary and
sorted_infection_summary) import the same way."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any, Callable

import numpy as np

ROOTS = ("observations", "direct_policy_learning", "bgp", "pandemic", "flow_reward_misspecification")


def _state_vector(self) -> np.ndarray:
    return np.concatenate([self.qpos, self.qvel])


def observation_factory(job: dict[str, Any], ours: type) -> tuple[Callable[[np.ndarray], Any], dict[str, type]]:
    """(raw vector -> observation object, {importable name: class}) for this job."""
    env = job.get("env") or {}
    namespace = getattr(ours.__init__, "__globals__", {})
    exports = {n: namespace[n] for n in namespace.get("__all__", ()) if n in namespace and n != ours.__name__}
    split = job.get("obs_split")  # [observation length, nq, nv] when MuJoCo state rides along
    if job.get("interface") != "reference" or not env.get("reference_observation"):
        return ours, {**exports, ours.__name__: ours}
    name = env["reference_observation"]
    family = env.get("reference_state")
    extra = {"state_vector": _state_vector} if family == "mujoco" else {}
    cls = type(name, (ours,), {"__module__": "direct_policy_learning.observations", **extra})
    with_vector = family == "mujoco" or name.startswith("MetaWorld")

    def build(vector: np.ndarray) -> Any:
        if split:
            k, nq, nv = split
            obj = cls(vector[:k])
            obj.qpos, obj.qvel = np.array(vector[k:k + nq]), np.array(vector[k + nq:k + nq + nv])
            obj.dt = float(vector[k + nq + nv])
            obj.root_x_position = float(obj.qpos[0])
            obj.observation_structure = None
        else:
            obj = cls(vector)
        if with_vector:
            obj.obs_vector = np.asarray(vector[: split[0]] if split else vector, dtype=np.float64).copy()
        return obj

    return build, {**exports, name: cls, ours.__name__: cls}


class ObservationImports(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Synthetic modules under ROOTS whose attributes are the job's observation classes."""

    def __init__(self, classes: dict[str, type]) -> None:
        self.classes = classes

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        # modules are lower-case; `from pkg import ClassName` must fail as an import of a name, not a module
        if parts[0] in ROOTS and parts[-1].islower():
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        classes = self.classes

        def lookup(attr: str) -> Any:
            if attr in classes:
                return classes[attr]
            raise AttributeError(f"module {spec.name!r} has no attribute {attr!r}; the observation class here is "
                                 f"{', '.join(sorted(classes))}")

        module.__getattr__ = lookup
        return module

    def exec_module(self, module) -> None:
        pass


def install(classes: dict[str, type]) -> None:
    sys.meta_path.insert(0, ObservationImports(classes))
