"""Refining a sub-optimal agent: the harness every refinement method shares (ULTRA-A/R/RA, the
random ablations, PPO fine-tuning, no refinement, StateMask-R, RICE), so they differ only in
what they do during refinement and share budgets, agents, schedules and evaluation. One run:

1. phase 0 (pre-training): PPO for `pretrain_steps`, or the agent at `pretrained_path`, or the
   seed's agent from the `share_pretrained` store (trained by the first job of the seed);
2. phase 1 (refinement): PPO goes on from those weights and optimiser state, with the
   learning-rate and clip schedules continued (`schedule`), until `refine_steps` more env steps
   are spent, the method's own rollouts (identification, explanation training) included;
3. `refine: false` stops after phase 0 (the no-refinement baseline).

A method subclasses `Refinement` and fills the hooks: `check_env`, `refine_policy`,
`vec_wrapper`, `env_wrapper`, `begin_refinement`, `callbacks`, `point`, `state`, `write_files`,
`summary`, and lists its curve `columns` and checkpointed `counters`."""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from llmrl.checkpoint import Checkpoint
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.refine import schedule as schedules
from llmrl.refine.shared import SharedPretrained
from llmrl.sb3 import hyperparams, signals, snapshot
from llmrl.sb3.curve import BudgetReached, CurveCallback
from llmrl.sb3.venv import make_venv
from llmrl.tracking import CURVE_COLUMNS

log = logging.getLogger(__name__)


def params_digest(policy) -> str:
    """sha256 over the policy's parameters in state-dict order: equal digests = equal weights."""
    h = hashlib.sha256()
    for name, tensor in policy.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"method.{name}={value!r} must be a {'non-negative' if allow_zero else 'positive'} integer")
    return value


def probability(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"method.{name}={value!r} must be a number from 0 to 1")
    return float(value)


class Refinement:
    needs_llm = False
    columns: tuple[str, ...] = ()    # the method's curve columns (besides phase and counters)
    counters: tuple[str, ...] = ()   # integers kept in checkpoints, on the curve and in the summary

    def __init__(
        self,
        name: str,
        refine: bool = True,
        pretrain_steps: int = 100_000,
        pretrained_path: str | None = None,
        refine_steps: int = 100_000,
        eval_every: int = 10_000,
        hparams: dict[str, Any] | None = None,
        device: str = "cpu",
        schedule: str = "continue",
        share_pretrained: str | None = None,
        checkpoint: bool = True,
    ) -> None:
        self.name = name
        self.refine = bool(refine)
        self.pretrain_steps = positive_int("pretrain_steps", pretrain_steps)
        self.pretrained_path = Path(pretrained_path).expanduser().resolve() if pretrained_path else None
        if self.pretrained_path is not None and not (self.pretrained_path / "model.zip").is_file():
            raise ConfigError(f"method.pretrained_path={pretrained_path}: no model.zip there (point it at a folder holding "
                              f"model.zip and, if the agent normalises observations, vecnormalize.pkl)")
        self.refine_steps = positive_int("refine_steps", refine_steps)
        self.eval_every = positive_int("eval_every", eval_every)
        self.hparam_overrides = dict(hparams or {})
        self.device = hyperparams.check_device(device)
        if schedule not in schedules.MODES:
            raise ConfigError(f"method.schedule={schedule!r}: choose continue (one schedule over pre-training and "
                              f"refinement) or restart (each phase restarts it)")
        self.schedule = schedule
        self.share_pretrained = share_pretrained or None
        self.write_checkpoints = checkpoint
        self.hp: dict[str, Any] = {}
        self.pretrained_from: str | None = None

    @property
    def extra_columns(self) -> list[str]:
        return ["phase", *self.columns, *self.counters]

    # ---- hooks ---------------------------------------------------------------------------
    def check_env(self, spec: EnvSpec) -> None:
        """Raise ConfigError if the method cannot run on `spec` (before anything starts)."""

    def refine_policy(self, policy: str) -> Any:
        """The PPO policy (name or class) refinement trains; the weights are the agent's."""
        return policy

    def vec_wrapper(self, ctx) -> Callable[[VecEnv], VecEnv] | None:
        """A VecEnv wrapper for refinement's training envs (under observation normalisation)."""
        return None

    def env_wrapper(self, ctx) -> Callable[[gym.Env], gym.Env] | None:
        """A gym wrapper for each refinement training env (above step counting)."""
        return None

    def begin_refinement(self, ctx, model: PPO, venv: VecEnv, files: Path, state: dict[str, Any]) -> None:
        """Before PPO's first refinement update (also on resume: `files`/`state` are the checkpoint's)."""

    def callbacks(self, ctx, model: PPO, venv: VecEnv, stop_at: int) -> list[BaseCallback]:
        return []

    def point(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return {}

    def write_files(self, folder: Path) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        return {}

    # ---- planning ------------------------------------------------------------------------
    def budget(self, spec: EnvSpec) -> int:
        self.space = spec.action_space()
        if not isinstance(self.space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ConfigError(f"method={self.name} needs a Discrete or Box action space; env {spec.name} has {self.space}")
        self.hp = hyperparams.resolve("ppo", spec.name, self.hparam_overrides)
        self.refine_policy(self.hp.get("policy", "MlpPolicy"))  # raises if the method has no variant of it
        self.check_env(spec)
        pre = 0 if self.pretrained_path else self.pretrain_steps
        return pre + (self.refine_steps if self.refine else 0)

    def _spans(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return schedules.phases(self.schedule, self.pretrain_steps, self.refine_steps)

    def _kwargs(self, span: tuple[float, float]) -> dict[str, Any]:
        return schedules.for_phase(hyperparams.to_sb3_kwargs(self.hp), span)

    # ---- the run -------------------------------------------------------------------------
    def train(self, ctx, checkpoint: Checkpoint | None) -> dict[str, Any]:
        if not self.hp:
            self.budget(ctx.spec)
        self.dir = ctx.run_dir / "refine"
        self.pre_dir = self.dir / "pretrained"
        state = dict(checkpoint.state) if checkpoint else {}
        if state.get("phase", "pretrain") == "pretrain":
            eval_wall = self._pretrain(ctx, checkpoint)
            refine_ckpt = None
        else:
            eval_wall, refine_ckpt = 0.0, checkpoint
        handover = (refine_ckpt or ctx.checkpoints.load()).state
        start = self._spans()[1][0]
        plain = hyperparams.to_sb3_kwargs(self.hp)
        summary = {"pretrained_params_sha256": handover["pretrained_params_sha256"],
                   "pretrained_from": handover.get("pretrained_from"),
                   "refine_start_env_steps": int(handover["refine_start"]),
                   "schedule": {"mode": self.schedule, "progress_at_refine_start": round(start, 6),
                                "learning_rate_at_refine_start": schedules.value_at(plain, "learning_rate", start),
                                "clip_range_at_refine_start": schedules.value_at(plain, "clip_range", start)},
                   "hparams": {k: str(v) if not isinstance(v, (int, float, str, bool)) else v for k, v in self.hp.items()}}
        if not self.refine:
            return {**summary, "eval_wall_s": round(eval_wall, 3)}
        return {**summary, **self._refine(ctx, refine_ckpt)}

    def _pretrain_identity(self, ctx) -> dict[str, Any]:
        from omegaconf import OmegaConf

        return {"env": OmegaConf.to_container(ctx.cfg.env, resolve=True), "seed": ctx.seed,
                "pretrain_steps": self.pretrain_steps, "hparams": self.hp, "schedule_span": self._spans()[0],
                "eval_every": self.eval_every, "eval_seed_offset": int(ctx.cfg.eval_seed_offset), "device": self.device}

    def _pretrain(self, ctx, checkpoint: Checkpoint | None) -> float:
        """Phase 0: the sub-optimal agent, trained here, loaded, or taken from the shared store;
        its files end in refine/pretrained."""
        self.pre_dir.mkdir(parents=True, exist_ok=True)
        next_eval = 0
        if self.pretrained_path is not None:
            eval_wall, next_eval = self._load_agent(ctx), 0
        elif self.share_pretrained:
            store = SharedPretrained(self.share_pretrained, ctx.spec.name, ctx.seed, self._pretrain_identity(ctx))
            with store.claim(str(ctx.run_dir)):
                if store.ready:
                    if ctx.tracker.points:
                        log.warning("the seed's shared sub-optimal agent is ready; this run's own partial pre-training "
                                    "(resumed) is replaced by it, with its curve points")
                        ctx.tracker.rewind(-1)
                    points, meta = store.load(self.pre_dir)
                    for p in points:
                        ctx.tracker.log_point(**{k: v for k, v in p.items() if k in ctx.tracker.columns})
                    ctx.tracker.continue_wall_from(float(points[-1].get("wall_s") or 0.0))
                    ctx.counter.steps = int(meta["env_steps"])
                    eval_wall, next_eval = 0.0, int(meta["next_eval"])
                    log.info("sub-optimal agent loaded from the shared store %s (trained by %s)", store.dir, meta.get("trained_by"))
                else:
                    eval_wall, next_eval = self._train_agent(ctx, checkpoint)
                    keep = set(CURVE_COLUMNS) | {"phase"}
                    store.publish(self.pre_dir, [{k: v for k, v in p.items() if k in keep} for p in ctx.tracker.points],
                                  {"env_steps": ctx.counter.steps, "next_eval": next_eval, "trained_by": str(ctx.run_dir)})
            self.pretrained_from = str(store.dir)
        else:
            eval_wall, next_eval = self._train_agent(ctx, checkpoint)
        model = PPO.load(str(self.pre_dir / "model.zip"), device=self.device)
        digest = params_digest(model.policy)
        steps = ctx.counter.steps

        def write(folder: Path) -> None:  # the hand-over to refinement is a checkpoint: a kill here loses nothing
            for f in self.pre_dir.iterdir():
                shutil.copy2(f, folder / f.name)

        ctx.checkpoints.save(write, {"env_steps": steps, "phase": "refine", "refine_start": steps, "wall_s": ctx.tracker.wall_s,
                                     "pretrained_params_sha256": digest, "pretrained_from": self.pretrained_from,
                                     "next_eval": next_eval, "refine_timesteps": 0, "n_updates": 0,
                                     **{k: 0 for k in self.counters}})
        log.info("sub-optimal agent ready at env_steps=%d; refinement (%s) starts", steps, self.name if self.refine else "none")
        return eval_wall

    def _load_agent(self, ctx) -> float:
        for f in ("model.zip", "vecnormalize.pkl"):
            if (self.pretrained_path / f).exists():
                shutil.copy2(self.pretrained_path / f, self.pre_dir / f)
        if hyperparams.normalize_kwargs(self.hp) and not (self.pre_dir / "vecnormalize.pkl").exists():
            raise ConfigError(f"method.pretrained_path={self.pretrained_path} has no vecnormalize.pkl, but the PPO "
                              f"hyperparameters for {ctx.spec.name} normalise observations")
        venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000, self.pre_dir / "vecnormalize.pkl")
        model = PPO.load(str(self.pre_dir / "model.zip"), env=venv, device=self.device)
        cb = CurveCallback(ctx, venv, self.eval_every, 0, checkpoint=False, extra_point=lambda: {"phase": 0})
        cb.init_callback(model)
        cb.final_point()
        venv.close()
        self.pretrained_from = str(self.pretrained_path)
        return cb.eval_wall_s

    def _train_agent(self, ctx, checkpoint: Checkpoint | None) -> tuple[float, int]:
        normalizer = checkpoint.path / "vecnormalize.pkl" if checkpoint else None
        venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000, normalizer)
        if checkpoint is not None:
            model = PPO.load(str(checkpoint.path / "model.zip"), env=venv, device=self.device, force_reset=False)
            if not snapshot.restore(checkpoint.path, venv):  # a checkpoint from before exact resume existed
                model._last_obs = None
                venv.seed(ctx.seed * 1000 + checkpoint.env_steps)
            next_eval = int(checkpoint.state["next_eval"])
        else:
            model = PPO(self.hp.get("policy", "MlpPolicy"), venv, seed=ctx.seed, device=self.device, verbose=0,
                        **self._kwargs(self._spans()[0]))
            next_eval = 0
        signals.attach(model, ctx)
        cb = CurveCallback(ctx, venv, self.eval_every, next_eval, checkpoint=self.write_checkpoints,
                           extra_point=lambda: {"phase": 0}, extra_state=lambda: {"phase": "pretrain"})
        remaining = self.pretrain_steps - model.num_timesteps
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=False, progress_bar=False)
            signals.flush(model)
        cb.final_point()
        model.save(str(self.pre_dir / "model.zip"))
        if hasattr(venv, "obs_rms"):
            venv.save(str(self.pre_dir / "vecnormalize.pkl"))
        venv.close()
        return cb.eval_wall_s, cb.next_eval

    def _refine(self, ctx, checkpoint: Checkpoint | None) -> dict[str, Any]:
        """Phase 1: PPO from the sub-optimal agent's weights, with the method's hooks."""
        ckpt = checkpoint or ctx.checkpoints.load()  # the hand-over checkpoint when refinement starts now
        state = dict(ckpt.state)
        src = ckpt.path
        refine_start = int(state["refine_start"])
        if ctx.llm is not None and "llm_usage" in state:
            from llmrl.llm.client import Usage

            ctx.llm.usage = Usage(**state["llm_usage"])  # the curve's LLM columns go on from where they were
        self.counts = {k: int(state.get(k, 0)) for k in self.counters}
        # refinement's own env seeds, apart from pre-training's and the eval seeds
        venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000 + 500 + ckpt.env_steps % 997,
                         src / "vecnormalize.pkl", self.vec_wrapper(ctx), self.env_wrapper(ctx))
        if (src / snapshot.FILE).exists():
            # a refinement checkpoint: the model with its optimiser, schedules and last observation,
            # and the training envs mid-episode, exactly as they were
            model = PPO.load(str(src / "model.zip"), env=venv, device=self.device, force_reset=False)
            snapshot.restore(src, venv)
            start_digest = state["refine_start_params_sha256"]
        else:
            model = PPO(self.refine_policy(self.hp.get("policy", "MlpPolicy")), venv, seed=ctx.seed + ckpt.env_steps,
                        device=self.device, verbose=0, **self._kwargs(self._spans()[1]))
            model.set_parameters(str(src / "model.zip"), exact_match=True, device=self.device)
            start_digest = params_digest(model.policy)
            model.num_timesteps = int(state["refine_timesteps"])
            model._n_updates = int(state["n_updates"])
        signals.attach(model, ctx)
        stop_at = refine_start + self.refine_steps

        def point() -> dict[str, Any]:
            return {"phase": 1, **self.point(), **self.counts, **(ctx.llm.usage.curve_columns() if ctx.llm is not None else {})}

        def extra_state() -> dict[str, Any]:
            out = {"phase": "refine", "refine_start": refine_start, "pretrained_params_sha256": state["pretrained_params_sha256"],
                   "pretrained_from": state.get("pretrained_from"), "refine_start_params_sha256": start_digest,
                   "refine_timesteps": model.num_timesteps,
                   "n_updates": model._n_updates, **self.state(), **self.counts}
            if ctx.llm is not None:
                out["llm_usage"] = asdict(ctx.llm.usage)
            return out

        curve = CurveCallback(ctx, venv, self.eval_every, int(state["next_eval"]), checkpoint=self.write_checkpoints,
                              extra_point=point, extra_state=extra_state, write_files=lambda m, folder: self.write_files(folder),
                              stop_at=stop_at)
        self.begin_refinement(ctx, model, venv, src, state)
        # PPO's own steps: what the budget leaves after the method's rollouts so far. Rollouts the
        # method adds later (re-identification) are caught by `stop_at`, which ends learning
        # when the shared counter reaches the budget (a partial last rollout is not trained on).
        remaining = min(self.refine_steps - model.num_timesteps, stop_at - ctx.counter.steps)
        if remaining > 0:
            try:
                model.learn(total_timesteps=remaining, callback=CallbackList([curve, *self.callbacks(ctx, model, venv, stop_at)]),
                            reset_num_timesteps=False, progress_bar=False)
            except BudgetReached:
                pass
            signals.flush(model)
        else:
            curve.init_callback(model)
        curve.final_point()
        venv.close()
        return {"refine_start_params_sha256": start_digest, "refine_steps": self.refine_steps,
                "eval_wall_s": round(curve.eval_wall_s, 3), **self.summary()}


class CountRollouts(BaseCallback):
    """Calls `fn(rollouts)` after every rollout of refinement (before its PPO update)."""

    def __init__(self, fn: Callable[[int], None], start: int = 0) -> None:
        super().__init__()
        self.fn, self.rollouts = fn, start

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        self.fn(self.rollouts)
