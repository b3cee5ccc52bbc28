"""ULTRA-A / ULTRA-R / ULTRA-RA and their refinement baselines, in one harness so they share
budgets, learning rates and evaluation. One run:

1. pre-train PPO for `pretrain_steps` (or load `pretrained_path`): the sub-optimal agent;
2. refinement (phase 1 on the curve): PPO continues from those weights and optimiser state,
   until `refine_steps` more env steps are spent (identification rollouts included, so every
   variant gets the same number of interactions):
   - identification (`critical: llm`): collect `num_trajectories` episodes of the current
     agent, narrate them, ask the LLM for critical steps (+ action / reward), build the table;
     repeated every `reidentify_every` PPO updates on fresh episodes;
   - `critical: random`: the same rollouts and table size, random steps/actions/rewards;
   - `critical: none`: plain PPO fine-tuning;
3. `refine: false` stops after step 1 (the no-refinement baseline)."""
from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from hydra.utils import get_class
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from llmrl.checkpoint import Checkpoint
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.sb3 import hyperparams, signals
from llmrl.sb3.curve import CurveCallback
from llmrl.sb3.venv import make_venv
from ultra.guide import GUIDED_POLICIES, CriticalStateGuide
from ultra.identify import Ask, IdentifyStats, identify_llm, identify_random
from ultra.table import CriticalTable
from ultra.trajectories import collect

log = logging.getLogger(__name__)
CRITICAL = ("llm", "random", "none")
COUNTERS = ("identifications", "identification_steps", "prompts", "repaired", "invalid_replies", "matched_states", "overrides", "shaped_steps")


def params_digest(policy) -> str:
    """sha256 over the policy's parameters in state-dict order: equal digests = equal weights."""
    h = hashlib.sha256()
    for name, tensor in policy.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"method.{name}={value!r} must be a {'non-negative' if allow_zero else 'positive'} integer")
    return value


class Ultra:
    extra_columns = ["phase", "critical_states", *COUNTERS]

    def __init__(
        self,
        name: str,
        critical: str = "llm",
        use_actions: bool = True,
        use_rewards: bool = True,
        refine: bool = True,
        pretrain_steps: int = 100_000,
        pretrained_path: str | None = None,
        refine_steps: int = 100_000,
        eval_every: int = 10_000,
        hparams: dict[str, Any] | None = None,
        device: str = "cpu",
        num_trajectories: int = 5,
        collect_deterministic: bool = False,
        window_steps: int = 40,
        windows_per_episode: int = 3,
        max_critical_per_window: int = 3,
        match_radius: float = 0.2,
        reward_weight: float = 1.0,
        reward_range: list[float] | tuple[float, float] = (-1.0, 1.0),
        reidentify_every: int = 0,
        narrators: dict[str, str] | None = None,
        checkpoint: bool = True,
    ) -> None:
        if critical not in CRITICAL:
            raise ConfigError(f"method.critical={critical!r}: choose one of {list(CRITICAL)}")
        self.name, self.critical = name, critical
        self.use_actions = bool(use_actions) and critical != "none"
        self.use_rewards = bool(use_rewards) and critical != "none"
        if critical != "none" and not (self.use_actions or self.use_rewards):
            raise ConfigError(f"method={name}: critical={critical} needs use_actions or use_rewards (or critical=none)")
        self.refine = bool(refine)
        self.pretrain_steps = _positive_int("pretrain_steps", pretrain_steps)
        self.pretrained_path = Path(pretrained_path).expanduser().resolve() if pretrained_path else None
        if self.pretrained_path is not None and not (self.pretrained_path / "model.zip").is_file():
            raise ConfigError(f"method.pretrained_path={pretrained_path}: no model.zip there (point it at a folder holding "
                              f"model.zip and, if the agent normalises observations, vecnormalize.pkl)")
        self.refine_steps = _positive_int("refine_steps", refine_steps)
        self.eval_every = _positive_int("eval_every", eval_every)
        self.hparam_overrides = dict(hparams or {})
        self.device = hyperparams.check_device(device)
        self.num_trajectories = _positive_int("num_trajectories", num_trajectories)
        self.collect_deterministic = bool(collect_deterministic)
        lo, hi = (float(x) for x in reward_range)
        if not lo < hi:
            raise ConfigError(f"method.reward_range={list(reward_range)} must be [low, high] with low < high")
        if not (isinstance(match_radius, (int, float)) and match_radius >= 0):
            raise ConfigError(f"method.match_radius={match_radius!r} must be a number >= 0")
        self.ask = Ask(want_action=self.use_actions, want_reward=self.use_rewards, reward_range=(lo, hi),
                       max_items=_positive_int("max_critical_per_window", max_critical_per_window),
                       window_steps=_positive_int("window_steps", window_steps),
                       windows_per_episode=_positive_int("windows_per_episode", windows_per_episode),
                       radius=float(match_radius))
        self.reward_weight = float(reward_weight)
        self.reidentify_every = _positive_int("reidentify_every", reidentify_every, allow_zero=True)
        self.narrators = dict(narrators or {})
        self.write_checkpoints = checkpoint
        self.needs_llm = critical == "llm" and self.refine
        self.hp: dict[str, Any] = {}

    # ---- planning ------------------------------------------------------------------------
    def budget(self, spec: EnvSpec) -> int:
        self.space = spec.action_space()
        if not isinstance(self.space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ConfigError(f"method={self.name} needs a Discrete or Box action space; env {spec.name} has {self.space}")
        self.hp = hyperparams.resolve("ppo", spec.name, self.hparam_overrides)
        policy = self.hp.get("policy", "MlpPolicy")
        if self.critical != "none" and policy not in GUIDED_POLICIES:
            raise ConfigError(f"method={self.name}: the PPO policy {policy!r} for env {spec.name} has no guided variant; "
                              f"use one of {sorted(GUIDED_POLICIES)}")
        if self.critical == "llm" and spec.description is None:
            raise ConfigError(f"method={self.name} narrates states from env.description, which env {spec.name} lacks")
        pre = 0 if self.pretrained_path else self.pretrain_steps
        return pre + (self.refine_steps if self.refine else 0)

    def _narrator(self, spec: EnvSpec):
        """Built once per run: the live-state keys and the prompts' sentences come from one object."""
        if getattr(self, "_narrator_obj", None) is None:
            target = self.narrators.get(spec.name) or self.narrators.get("default", "ultra.narration.FieldNarrator")
            desc = spec.describe() if spec.description else None
            self._narrator_obj = get_class(target)(desc, self.space)
        return self._narrator_obj

    # ---- the run -------------------------------------------------------------------------
    def train(self, ctx, checkpoint: Checkpoint | None) -> dict[str, Any]:
        if not self.hp:
            self.budget(ctx.spec)
        self.dir = ctx.run_dir / "ultra"
        self.pre_dir = self.dir / "pretrained"
        state = dict(checkpoint.state) if checkpoint else {}
        if state.get("phase", "pretrain") == "pretrain":
            eval_wall = self._pretrain(ctx, checkpoint)
            refine_ckpt = None
        else:
            eval_wall, refine_ckpt = 0.0, checkpoint
        handover = (refine_ckpt or ctx.checkpoints.load()).state
        summary = {"pretrained_params_sha256": handover["pretrained_params_sha256"],
                   "refine_start_env_steps": int(handover["refine_start"]),
                   "hparams": {k: str(v) if not isinstance(v, (int, float, str, bool)) else v for k, v in self.hp.items()}}
        if not self.refine:
            return {**summary, "eval_wall_s": round(eval_wall, 3)}
        return {**summary, **self._refine(ctx, refine_ckpt)}

    def _pretrain(self, ctx, checkpoint: Checkpoint | None) -> float:
        """Phase 0: the sub-optimal agent, trained here or loaded; its files go to ultra/pretrained."""
        self.pre_dir.mkdir(parents=True, exist_ok=True)
        cols = lambda: {"phase": 0}  # noqa: E731
        if self.pretrained_path is not None:
            for f in ("model.zip", "vecnormalize.pkl"):
                if (self.pretrained_path / f).exists():
                    shutil.copy2(self.pretrained_path / f, self.pre_dir / f)
            if hyperparams.normalize_kwargs(self.hp) and not (self.pre_dir / "vecnormalize.pkl").exists():
                raise ConfigError(f"method.pretrained_path={self.pretrained_path} has no vecnormalize.pkl, but the PPO "
                                  f"hyperparameters for {ctx.spec.name} normalise observations")
            venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000, self.pre_dir / "vecnormalize.pkl")
            model = PPO.load(str(self.pre_dir / "model.zip"), env=venv, device=self.device)
            cb = CurveCallback(ctx, venv, self.eval_every, 0, checkpoint=False, extra_point=cols)
            cb.init_callback(model)
            cb.final_point()
        else:
            normalizer = checkpoint.path / "vecnormalize.pkl" if checkpoint else None
            venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000, normalizer)
            if checkpoint is not None:
                model = PPO.load(str(checkpoint.path / "model.zip"), env=venv, device=self.device)
                venv.seed(ctx.seed * 1000 + checkpoint.env_steps)
                next_eval = int(checkpoint.state["next_eval"])
            else:
                model = PPO(self.hp.get("policy", "MlpPolicy"), venv, seed=ctx.seed, device=self.device, verbose=0,
                            **hyperparams.to_sb3_kwargs(self.hp))
                next_eval = 0
            signals.attach(model, ctx)
            cb = CurveCallback(ctx, venv, self.eval_every, next_eval, checkpoint=self.write_checkpoints, extra_point=cols,
                               extra_state=lambda: {"phase": "pretrain"}, stop_at=self.pretrain_steps)
            remaining = self.pretrain_steps - model.num_timesteps
            if remaining > 0:
                model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=False, progress_bar=False)
            cb.final_point()
            model.save(str(self.pre_dir / "model.zip"))
            if hasattr(venv, "obs_rms"):
                venv.save(str(self.pre_dir / "vecnormalize.pkl"))
        digest = params_digest(model.policy)
        venv.close()
        # The hand-over to refinement is a checkpoint of its own, so a kill here loses nothing.
        steps = ctx.counter.steps

        def write(folder: Path) -> None:
            for f in self.pre_dir.iterdir():
                shutil.copy2(f, folder / f.name)

        ctx.checkpoints.save(write, {"env_steps": steps, "phase": "refine", "refine_start": steps, "wall_s": ctx.tracker.wall_s,
                                     "pretrained_params_sha256": digest,
                                     "next_eval": cb.next_eval, "refine_timesteps": 0, "n_updates": 0, "updates": 0,
                                     **{k: 0 for k in COUNTERS}})
        log.info("sub-optimal agent ready at env_steps=%d; refinement (%s) starts", steps, self.name if self.refine else "none")
        return cb.eval_wall_s

    def _refine(self, ctx, checkpoint: Checkpoint | None) -> dict[str, Any]:
        """Phase 1: PPO from the sub-optimal agent's weights, steered by the critical-state table."""
        ckpt = checkpoint or ctx.checkpoints.load()  # the hand-over checkpoint when refinement starts now
        state = dict(ckpt.state)
        src = ckpt.path
        refine_start = int(state["refine_start"])
        if ctx.llm is not None and "llm_usage" in state:
            from llmrl.llm.client import Usage

            ctx.llm.usage = Usage(**state["llm_usage"])  # the curve's LLM columns go on from where they were
        self.counts = {k: int(state.get(k, 0)) for k in COUNTERS}
        guided = self.critical != "none"
        narrator = self._narrator(ctx.spec) if guided else None
        self.guide: CriticalStateGuide | None = None

        def wrap(v):
            self.guide = CriticalStateGuide(v, narrator.key, self.reward_weight, self.use_actions, self.use_rewards)
            return self.guide

        # refinement's own env seeds, apart from pre-training's and the eval seeds
        venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000 + 500 + ckpt.env_steps % 997,
                         src / "vecnormalize.pkl", wrap if guided else None)
        policy = self.hp.get("policy", "MlpPolicy")
        model = PPO(GUIDED_POLICIES[policy] if guided else policy, venv, seed=ctx.seed + ckpt.env_steps, device=self.device,
                    verbose=0, **hyperparams.to_sb3_kwargs(self.hp))
        model.set_parameters(str(src / "model.zip"), exact_match=True, device=self.device)
        signals.attach(model, ctx)
        start_digest = params_digest(model.policy)
        model.num_timesteps = int(state["refine_timesteps"])
        model._n_updates = int(state["n_updates"])
        if guided:
            model.policy.guide = self.guide
            for k in ("matched_states", "overrides", "shaped_steps"):
                setattr(self.guide, k, self.counts[k])
            if (src / "table.json").exists():
                self.guide.set_table(CriticalTable.load(src / "table.json"))
        stop_at = refine_start + self.refine_steps
        self.problems: list[str] = []

        def point() -> dict[str, Any]:
            self._sync_counts()
            cols = {"phase": 1, "critical_states": len(self.guide.table) if guided and self.guide.table else 0, **self.counts}
            return {**cols, **(ctx.llm.usage.curve_columns() if ctx.llm is not None else {})}

        def extra_state() -> dict[str, Any]:
            self._sync_counts()
            out = {"phase": "refine", "refine_start": refine_start, "pretrained_params_sha256": state["pretrained_params_sha256"],
                   "refine_timesteps": model.num_timesteps,
                   "n_updates": model._n_updates, "updates": reid.updates, **self.counts}
            if ctx.llm is not None:
                out["llm_usage"] = asdict(ctx.llm.usage)
            return out

        def write(m, folder: Path) -> None:
            if guided and self.guide.table is not None:
                self.guide.table.save(folder / "table.json")

        curve = CurveCallback(ctx, venv, self.eval_every, int(state["next_eval"]), checkpoint=self.write_checkpoints,
                              extra_point=point, extra_state=extra_state, write_files=write, stop_at=stop_at)
        reid = Reidentify(self, ctx, venv, int(state.get("updates", 0)), stop_at)
        if guided and self.guide.table is None:
            self._identify(ctx, model, venv)
        remaining = self.refine_steps - model.num_timesteps
        if remaining > 0 and ctx.counter.steps < stop_at:
            model.learn(total_timesteps=remaining, callback=CallbackList([curve, reid]), reset_num_timesteps=False,
                        progress_bar=False)
        else:
            curve.init_callback(model)
        curve.final_point()
        venv.close()
        self._sync_counts()
        return {"refine_start_params_sha256": start_digest, "refine_steps": self.refine_steps,
                "eval_wall_s": round(curve.eval_wall_s, 3), "ultra": dict(self.counts),
                "identification_problems": self.problems[-20:]}

    def _sync_counts(self) -> None:
        if self.guide is not None:
            for k in ("matched_states", "overrides", "shaped_steps"):
                self.counts[k] = int(getattr(self.guide, k))

    def _identify(self, ctx, model, venv) -> None:
        """Fresh episodes of the current agent -> a new critical-state table for the guide."""
        n = self.counts["identifications"] + 1
        normalize = getattr(venv, "normalize_obs", None)

        def act(obs):
            x = normalize(obs) if normalize is not None else obs
            return model.predict(x, deterministic=self.collect_deterministic)[0]

        narrator = self._narrator(ctx.spec)
        episodes = collect(ctx.spec, ctx.counter, act, self.num_trajectories,
                           ctx.seed * 1000 + 100_000 + n * self.num_trajectories, narrator)
        out = self.dir / f"identify_{n:02d}"
        if self.critical == "llm":
            table, stats = identify_llm(ctx.llm, ctx.spec.name, ctx.spec.describe(), episodes, self.ask, self.space, out,
                                        tag=f"identify{n}")
        else:
            table, stats = identify_random(episodes, self.ask, self.space, np.random.default_rng([ctx.seed, n]))
            out.mkdir(parents=True, exist_ok=True)
        table.save(out / "table.json")
        self.guide.set_table(table)
        self._add(stats)
        self.counts["identifications"] = n
        self.counts["identification_steps"] += sum(e.length for e in episodes)
        log.info("identification %d: %d episodes (returns %s), %d critical states, %d prompts, %d repaired, %d invalid",
                 n, len(episodes), [round(e.ret, 1) for e in episodes], len(table), stats.prompts, stats.repaired, stats.invalid)

    def _add(self, stats: IdentifyStats) -> None:
        self.counts["prompts"] += stats.prompts
        self.counts["repaired"] += stats.repaired
        self.counts["invalid_replies"] += stats.invalid
        self.problems += stats.problems


class Reidentify(BaseCallback):
    """Identification again every `reidentify_every` PPO updates (0 = only at the start)."""

    def __init__(self, method: Ultra, ctx, venv, updates: int, stop_at: int) -> None:
        super().__init__()
        self.method, self.ctx, self.venv = method, ctx, venv
        self.updates = updates
        self.stop_at = stop_at

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.updates += 1
        k = self.method.reidentify_every
        if k and self.updates % k == 0 and self.ctx.counter.steps < self.stop_at:
            self.method._identify(self.ctx, self.model, self.venv)
