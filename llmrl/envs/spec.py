"""The environment spec: what one `conf/env/*.yaml` turns into. It is the only way methods
build environments, so that counting, horizons, success signals and descriptions agree."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from hydra.utils import get_class

from llmrl.counting import CountSteps, StepCounter
from llmrl.envs.description import Description, load_description
from llmrl.envs.registry import ensure_registered
from llmrl.errors import ConfigError


def _plain(node: Any) -> Any:
    """Config nodes passed through unresolved (`_recursive_: false`) become plain containers."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node) if isinstance(node, dict) else node


@dataclass
class EnvSpec:
    name: str
    gym_id: str
    horizon: int
    eval_episodes: int = 10
    success_key: str | None = None
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    # Wrappers applied in order after gym.make, each {"_target_": "pkg.Class", **kwargs}.
    wrappers: list[dict[str, Any]] = field(default_factory=list)
    # Folder under llmrl/envs/descriptions holding the LLM-facing description, and the values of
    # its ${...} placeholders (e.g. a board's size).
    description: str | None = None
    description_vars: dict[str, Any] = field(default_factory=dict)
    # Names the published PromptPO prompts use for this env (policy_class, reward_title); defaults
    # derive from the observation class (HopperObservation -> HopperPolicy, HopperRewardFunction).
    prompt_names: dict[str, str] = field(default_factory=dict)
    # What PromptPO's published policies import and read: the observation class name in
    # `from direct_policy_learning.observations import <name>`, and the extra simulator state its
    # objects carry (mujoco: full qpos, qvel, dt), for scripts/evaluate_policy.py --interface reference.
    reference_observation: str | None = None
    reference_state: str | None = None
    # How PromptPO ranks candidates on this env: return (the reference everywhere but Meta-World) or success.
    rank_by: str = "return"
    # Meta-World takes its task seed at construction time, not at reset.
    seed_at_make: bool = False
    # Apply the horizon after the wrappers (in agent steps) rather than at gym.make (in base
    # env steps): needed where a wrapper skips frames, as Atari's does.
    limit_after_wrappers: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.horizon, int) or self.horizon <= 0:
            raise ConfigError(f"env.horizon={self.horizon!r} must be a positive integer (env {self.name})")
        if not isinstance(self.eval_episodes, int) or self.eval_episodes <= 0:
            raise ConfigError(
                f"env.eval_episodes={self.eval_episodes!r} must be a positive integer, e.g. env.eval_episodes=10"
            )
        if self.rank_by not in ("return", "success"):
            raise ConfigError(f"env.rank_by={self.rank_by!r}: choose return or success")
        if self.rank_by == "success" and self.success_key is None:
            raise ConfigError(f"env.rank_by=success needs env.success_key (env {self.name})")
        self.make_kwargs = _plain(self.make_kwargs or {})
        self.wrappers = [_plain(w) for w in (self.wrappers or [])]

    def make(self, seed: int | None = None, counter: StepCounter | None = None, **overrides: Any) -> gym.Env:
        """Build one env. With `counter`, every step it takes is counted as a training step."""
        ensure_registered(self.gym_id)
        kwargs = {**self.make_kwargs, **overrides}
        if self.seed_at_make and seed is not None:
            kwargs["seed"] = seed
        limit = None if self.limit_after_wrappers else self.horizon
        env = gym.make(self.gym_id, max_episode_steps=limit, **kwargs)
        for spec in self.wrappers:
            spec = dict(spec)
            cls = get_class(spec.pop("_target_"))
            env = cls(env, **spec)
        if self.limit_after_wrappers:
            env = gym.wrappers.TimeLimit(env, self.horizon)
        if counter is not None:
            env = CountSteps(env, counter)
        if seed is not None:
            env.action_space.seed(seed)
        return env

    def action_space(self) -> gym.Space:
        """The action space, read off a throw-away instance (methods plan with it before training)."""
        probe = self.make()
        try:
            return probe.action_space
        finally:
            probe.close()

    @property
    def has_success(self) -> bool:
        return self.success_key is not None

    def describe(self) -> Description:
        if self.description is None:
            raise ConfigError(f"env {self.name} has no LLM-facing description (env.description is null)")
        return load_description(self.description, _plain(self.description_vars or {}))
