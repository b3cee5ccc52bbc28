"""Per-env hyperparameters as data (`conf/hparams/<algo>.yaml`, rl-baselines3-zoo style),
turned into stable-baselines3 constructor arguments."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

from llmrl.errors import ConfigError

HPARAMS_DIR = Path(__file__).resolve().parents[2] / "conf" / "hparams"

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}
# Keys that configure the harness around the algorithm rather than the SB3 constructor.
HARNESS_KEYS = ("n_envs", "normalize", "n_timesteps", "policy")


def load_table(algo: str) -> dict[str, Any]:
    path = HPARAMS_DIR / f"{algo}.yaml"
    if not path.is_file():
        raise ConfigError(f"no hyperparameter table for algo '{algo}' at {path}")
    return yaml.safe_load(path.read_text()) or {}


def resolve(algo: str, env_name: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Table defaults, then the env's entry, then command-line overrides (method.hparams.*); a key
    the algorithm does not take is one line naming the valid ones (a typo never passes silently)."""
    table = load_table(algo)
    merged = dict(table.get("default", {}))
    merged.update(table.get(env_name, {}) or {})
    merged.update(overrides or {})
    valid = valid_keys(algo)
    for key in overrides or {}:
        if key not in valid:
            import difflib

            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f" (did you mean method.hparams.{close[0]}?)" if close else ""
            raise ConfigError(f"method.hparams.{key}: {algo.upper()} has no such hyperparameter{hint}; valid: "
                              f"{', '.join(sorted(valid))}")
    return merged


def valid_keys(algo: str) -> set[str]:
    """The SB3 constructor's arguments, plus the harness's own keys."""
    import inspect

    from stable_baselines3 import PPO, SAC

    cls = {"ppo": PPO, "sac": SAC}[algo]
    skip = {"self", "policy", "env", "seed", "device", "verbose", "_init_setup_model", "tensorboard_log"}
    return {p for p in inspect.signature(cls.__init__).parameters if p not in skip} | set(HARNESS_KEYS)


def check_device(device: str) -> str:
    """cpu, cuda, cuda:N, mps or auto; anything else is one line before any work."""
    import re

    if not isinstance(device, str) or not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", device):
        raise ConfigError(f"method.device={device!r}: choose cpu, cuda, cuda:N, mps or auto")
    return device


def linear_schedule(start: float):
    """SB3 calls schedules with the remaining progress, 1 at the start and 0 at the end."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * start

    return schedule


def _schedule_or_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if value.startswith("lin_"):
            return linear_schedule(float(value[4:]))
        try:
            return float(value)
        except ValueError:
            if key == "ent_coef" and value.startswith("auto"):
                return value
            raise ConfigError(f"hparams.{key}={value!r}: expected a number or 'lin_<start>' (linear decay)") from None
    return value


def to_sb3_kwargs(hp: dict[str, Any]) -> dict[str, Any]:
    """Everything not in HARNESS_KEYS goes to the SB3 constructor, with schedules and the
    policy's activation name translated into objects."""
    kwargs = {k: v for k, v in hp.items() if k not in HARNESS_KEYS}
    for key in ("learning_rate", "clip_range", "ent_coef"):
        if key in kwargs:
            kwargs[key] = _schedule_or_value(key, kwargs[key])
    pk = dict(kwargs.get("policy_kwargs") or {})
    if "activation_fn" in pk:
        name = str(pk["activation_fn"]).lower()
        if name not in ACTIVATIONS:
            raise ConfigError(f"hparams.policy_kwargs.activation_fn={name!r}: choose one of {sorted(ACTIVATIONS)}")
        pk["activation_fn"] = ACTIVATIONS[name]
    if pk:
        kwargs["policy_kwargs"] = pk
    else:
        kwargs.pop("policy_kwargs", None)
    return kwargs


def normalize_kwargs(hp: dict[str, Any]) -> dict[str, Any] | None:
    """`normalize: true` means observations and rewards; a dict picks (norm_obs, norm_reward)."""
    norm = hp.get("normalize", False)
    if norm is True:
        return {"norm_obs": True, "norm_reward": True}
    if isinstance(norm, dict):
        return {"norm_obs": bool(norm.get("norm_obs", True)), "norm_reward": bool(norm.get("norm_reward", True))}
    return None


def printable(hp: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters as JSON takes them (schedules and classes by name), for summaries."""
    return {k: (v if isinstance(v, (int, float, str, bool, list, dict)) or v is None else str(v)) for k, v in hp.items()}
