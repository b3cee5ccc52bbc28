"""RL started from a guide policy written by an LLM (or by hand): jump-start RL, behaviour
cloning then fine-tuning, or a residual on the guide, with PPO or SAC, on one step axis.

One run, one curve:
- phase 0, the guide. Either PromptPO's rounds inside this run (`guide: promptpo`; the method
  given in `guide_phase`, built by the config, every step it spends counted and its points on the
  curve), or a policy file (`guide_policy`; one point at the step count it starts from, its
  held-out return). Then the guide plays `guide_episodes` episodes on training seeds in the
  sandbox (counted): their return and length set jump-start's curriculum, behaviour cloning
  learns from them.
- phase 1, RL. PPO or SAC with the env's tuned hyperparameters (conf/hparams/) until the whole
  run's budget (`total_steps`, phase 0 included) is spent; the guide acts from its own sandboxed
  process (`llmrl.sandbox.session`), never in this one. The curve's return is the greedy policy
  the method produces: the agent alone for jsrl and bc, guide + residual for residual; jsrl adds
  the mixed policy's return (`guided_return`) and the current roll-in (`jsrl_h`).

Resume after a kill: PromptPO resumes its rounds; the hand-over checkpoint keeps the guide's code
and measured episodes; RL resumes exactly from its last checkpoint (the guide's process is
started afresh, so a guide that keeps memory across episodes starts that memory over)."""
from __future__ import annotations

import hashlib
import json
import logging
import statistics
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from guided.clone import clone
from guided.guide import FailureLog, GuideActor, jump_started_returns, measure
from guided.jumpstart import Curriculum, JumpStart, drain_into_replay
from guided.residual import Residual, zero_action_layer
from llmrl.checkpoint import Checkpoint
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError, GuideError, Incompatible
from llmrl.refine.harness import positive_int
from llmrl.sandbox import SandboxSettings
from llmrl.sandbox.session import PolicySession
from llmrl.sb3 import hyperparams, signals, snapshot
from llmrl.sb3.curve import BudgetReached, CurveCallback
from llmrl.sb3.venv import deterministic_act, make_venv
from llmrl.seeding import derived_seed

log = logging.getLogger(__name__)
ALGOS = {"ppo": PPO, "sac": SAC}
MODES = ("jsrl", "bc", "residual")
GUIDE_FILE = "guide_policy.py"
DATA_FILE = "guide_data.npz"


class _PhaseZero:
    """The run's tracker as the guide's own method sees it: every point it logs is phase 0."""

    def __init__(self, tracker) -> None:
        self._tracker = tracker

    def log_point(self, replace_last: bool = False, **point: Any) -> dict[str, Any]:
        return self._tracker.log_point(replace_last=replace_last, phase=0, **point)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)


class _Drain(BaseCallback):
    """After every env step (before SAC stores its own transition): the roll-ins' transitions of
    that step go into the replay buffer, as JSRL trains an off-policy learner on all its data."""

    def __init__(self, model, layers: list[JumpStart]) -> None:
        super().__init__()
        self.target, self.layers = model, layers

    def _on_step(self) -> bool:
        drain_into_replay(self.target, self.layers)
        return True


def _jump_start_layer(env) -> JumpStart:
    while not isinstance(env, JumpStart):
        env = env.env
    return env


def _number(key: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
        raise ConfigError(f"method.{key}={value!r} must be a number from {low} to {high if high is not None else 'infinity'}")
    return float(value)


class GuidedRL:
    def __init__(self, name: str, mode: str, algo: str = "ppo", guide: str = "auto", guide_policy: str | None = None,
                 guide_class: str | None = None, guide_interface: str = "ours", guide_phase: Any = None,
                 guide_episodes: int = 10, total_steps: int | None = None, eval_every: int = 10_000,
                 hparams: dict[str, Any] | None = None, device: str = "cpu", checkpoint: bool = True,
                 max_guide_failures: int = 10, guide_restart_every: int = 200_000, jsrl: dict[str, Any] | None = None,
                 bc: dict[str, Any] | None = None, residual: dict[str, Any] | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"method.mode={mode!r}: choose one of {', '.join(MODES)}")
        if algo not in ALGOS:
            raise ConfigError(f"method.algo={algo!r}: choose one of {sorted(ALGOS)}")
        if guide not in ("auto", "promptpo", "file"):
            raise ConfigError(f"method.guide={guide!r}: choose promptpo (PromptPO's rounds first, in this run), file "
                              f"(method.guide_policy=PATH) or auto (file when guide_policy is set, else promptpo)")
        if guide == "auto":
            guide = "file" if guide_policy else "promptpo"
        if guide == "promptpo" and guide_policy:
            raise ConfigError(f"method.guide=promptpo and method.guide_policy={guide_policy} contradict each other: "
                              f"drop one (guide_policy alone selects the file)")
        if guide == "file":
            if not guide_policy:
                raise ConfigError("method.guide=file needs method.guide_policy=PATH (a policy file, as "
                                  "scripts/evaluate_policy.py takes)")
            path = Path(str(guide_policy)).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"method.guide_policy={guide_policy}: no such file (give the path of a Python file "
                                  f"defining a class with act(self, obs))")
            self.guide_policy: Path | None = path
        else:
            self.guide_policy = None
            if guide_phase is None or not hasattr(guide_phase, "train"):
                raise ConfigError("method.guide=promptpo needs method.guide_phase (PromptPO's settings, with _target_)")
        if guide_interface not in ("ours", "reference"):
            raise ConfigError(f"method.guide_interface={guide_interface!r}: choose ours or reference")
        if total_steps is not None:
            positive_int("total_steps", total_steps)
        self.name, self.mode, self.algo, self.source = name, mode, algo, guide
        self.guide_phase = guide_phase if guide == "promptpo" else None
        self.needs_llm = guide == "promptpo"
        # PromptPO's phase draws PromptPO's LLM samples (the cache is keyed by them): within a sweep, every hybrid
        # of a seed and PromptPO alone see the same replies for the same prompts, a paired comparison
        self.llm_identity = getattr(guide_phase, "name", "promptpo") if self.needs_llm else name
        self.guide_class, self.guide_interface = guide_class or None, guide_interface
        self.guide_episodes = positive_int("guide_episodes", guide_episodes, allow_zero=mode == "residual")
        self.total_steps, self.eval_every = total_steps, positive_int("eval_every", eval_every)
        self.hparam_overrides = dict(hparams or {})
        self.device = hyperparams.check_device(device)
        self.write_checkpoints = bool(checkpoint)
        self.max_guide_failures = positive_int("max_guide_failures", max_guide_failures, allow_zero=True)
        self.guide_restart_every = positive_int("guide_restart_every", guide_restart_every)
        j = dict(jsrl or {})
        self.jsrl = {"h0": None if j.get("h0") is None else positive_int("jsrl.h0", j["h0"]),
                     "stages": positive_int("jsrl.stages", j.get("stages", 10)),
                     "tolerance": _number("jsrl.tolerance", j.get("tolerance", 0.05), 0.0),
                     "window": positive_int("jsrl.window", j.get("window", 10)),
                     "guide_transitions": bool(j.get("guide_transitions", True))}
        b = dict(bc or {})
        self.bc = {"epochs": positive_int("bc.epochs", b.get("epochs", 50), allow_zero=True), "batch_size": positive_int("bc.batch_size", b.get("batch_size", 256)),
                   "learning_rate": _number("bc.learning_rate", b.get("learning_rate", 1e-3), 0.0),
                   "value_fit": bool(b.get("value_fit", True))}
        self.residual_scale = _number("residual.scale", dict(residual or {}).get("scale", 1.0), 0.0)
        self.hp: dict[str, Any] = {}
        self._planned: int | None = None

    @property
    def extra_columns(self) -> list[str]:
        own = ["phase", "guided_return", "jsrl_h", "guide_failures"]
        return own + [c for c in getattr(self.guide_phase, "extra_columns", []) if c not in own]

    # ---- planning -----------------------------------------------------------------------------
    def budget(self, spec: EnvSpec) -> int:
        space = spec.action_space()
        if (self.algo == "sac" or self.mode == "residual") and not isinstance(space, gym.spaces.Box):
            what = "method.algo=sac" if self.algo == "sac" else f"method={self.name} (a residual added to the guide's action)"
            raise Incompatible(f"{what} needs a continuous (Box) action space, but env {spec.name} has {space}")
        self.hp = hyperparams.resolve(self.algo, spec.name, self.hparam_overrides)
        self._planned = int(self.total_steps or int(float(self.hp.get("n_timesteps", 1_000_000))))
        phase0 = self.guide_phase.budget(spec) if self.guide_phase is not None else 0
        if phase0 >= self._planned:
            log.warning("PromptPO's phase may spend up to %d env steps, the whole budget of %d: RL may get none",
                        phase0, self._planned)
        return self._planned

    def effective_config(self) -> dict[str, Any]:
        return {"mode": self.mode, "algo": self.algo, "guide": self.source, "total_steps": self._planned,
                "hparams": hyperparams.printable(self.hp)}

    # ---- the run ------------------------------------------------------------------------------
    def train(self, ctx, checkpoint: Checkpoint | None) -> dict[str, Any]:
        if self._planned is None:
            self.budget(ctx.spec)
        self.env_dict = {k: v for k, v in OmegaConf.to_container(ctx.cfg.env, resolve=True).items() if not k.startswith("_")}
        self.settings = SandboxSettings.from_config(ctx.cfg.sandbox)
        if checkpoint is None or checkpoint.state.get("phase") != "rl":
            checkpoint = self._guide(ctx, checkpoint)
        return self._rl(ctx, checkpoint)

    def _session(self, ctx, code: str, role: str) -> PolicySession:
        return PolicySession(code, self.env_dict, self.settings, Path(ctx.run_dir) / "sandbox", class_name=self.guide_class,
                             rng_seed=derived_seed(ctx.seed, "guide", role), interface=self.guide_interface,
                             restart_every=self.guide_restart_every)

    def _guide(self, ctx, checkpoint: Checkpoint | None) -> Checkpoint:
        """Phase 0: the guide's code, its held-out return, its measured episodes; ends in the
        hand-over checkpoint RL starts (or resumes) from."""
        folder = Path(ctx.run_dir) / "guide"
        folder.mkdir(exist_ok=True)
        if self.source == "promptpo":
            ctx.tracker.status.phase("phase 0: PromptPO writes the guide")
            result = self.guide_phase.train(replace(ctx, tracker=_PhaseZero(ctx.tracker)), checkpoint)
            best = Path(ctx.run_dir) / "best_policy.py"
            if not best.is_file():
                raise GuideError(f"PromptPO's phase produced no runnable policy in its {self.guide_phase.rounds} rounds, so "
                                 f"there is no guide to start RL from (see {ctx.run_dir}/promptpo/); try more rounds "
                                 f"(method.guide_phase.rounds) or a stronger LLM")
            code = best.read_text()
            origin = {"source": "promptpo", "best_round": result.get("best_round"),
                      "held_out_return": next((p.get("return_mean") for p in reversed(ctx.tracker.points)
                                               if p.get("return_mean") is not None), None)}
        else:
            code = self.guide_policy.read_text()
            origin = {"source": "file", "path": str(self.guide_policy)}
        origin["sha256"] = hashlib.sha256(code.encode()).hexdigest()
        (folder / GUIDE_FILE).write_text(code)
        seeds = [derived_seed(ctx.seed, "guide episode", i) % 2**31 for i in range(self.guide_episodes)]
        with self._session(ctx, code, "measure") as session:
            if self.source == "file":
                ctx.tracker.status.phase("phase 0: the guide on the held-out seeds")
                held = measure(ctx.spec, session, ctx.eval_seeds(), counter=None)
                point = {"return_mean": statistics.fmean(held.returns), "return_std": statistics.pstdev(held.returns),
                         "eval_episodes": len(held.returns)}
                if ctx.spec.has_success:
                    point["success_rate"] = statistics.fmean(held.successes)
                ctx.tracker.log_point(env_steps=ctx.counter.steps, phase=0, **point)
                origin["held_out_return"] = point["return_mean"]
            ctx.tracker.status.phase(f"phase 0: the guide's {self.guide_episodes} measured episodes")
            data = measure(ctx.spec, session, seeds, ctx.counter) if seeds else None
            origin["sandbox"] = session.describe()
        guide = {**origin, "episodes": self.guide_episodes,
                 "train_return": statistics.fmean(data.returns) if data else None,
                 "train_length": statistics.fmean(data.lengths) if data else None,
                 "measure_steps": int(sum(data.lengths)) if data else 0}
        (folder / "guide.json").write_text(json.dumps(guide, indent=2))
        log.info("guide ready (%s): training return %s over %d episodes, held-out %s", self.source,
                 guide["train_return"], self.guide_episodes, guide.get("held_out_return"))

        def write(out: Path) -> None:
            (out / GUIDE_FILE).write_text(code)
            if data is not None:
                np.savez_compressed(out / DATA_FILE, **data.arrays())

        first = (ctx.counter.steps // self.eval_every + 1) * self.eval_every
        state = {"env_steps": ctx.counter.steps, "phase": "rl", "wall_s": ctx.tracker.wall_s, "guide": guide,
                 "rl_start": ctx.counter.steps, "next_eval": first}
        if ctx.llm is not None:
            state["llm_usage"] = asdict(ctx.llm.usage)
        ctx.checkpoints.save(write, state)
        return ctx.checkpoints.load()

    def _rl(self, ctx, checkpoint: Checkpoint) -> dict[str, Any]:
        """Phase 1: PPO or SAC with the guide, until the run's budget is spent."""
        state, src = dict(checkpoint.state), checkpoint.path
        guide = state["guide"]
        code = (src / GUIDE_FILE).read_text()
        if ctx.llm is not None and "llm_usage" in state:
            from llmrl.llm.client import Usage

            ctx.llm.usage = Usage(**state["llm_usage"])  # the curve's LLM columns go on from where they were
        failures = FailureLog(self.max_guide_failures, int(state.get("guide_failures", 0)), state.get("guide_failure_messages"))
        total = int(self._planned)
        with self._session(ctx, code, "train") as train_session, self._session(ctx, code, "eval") as eval_session:
            train_guide = GuideActor(train_session, failures, "during training")
            eval_guide = GuideActor(eval_session, failures, "in a held-out evaluation")
            curriculum, env_wrap, eval_wrap = None, None, None
            if self.mode == "jsrl":
                h0 = self.jsrl["h0"] or max(1, int(round(min(guide["train_length"], ctx.spec.horizon))))
                saved = state.get("jsrl") or {}
                curriculum = Curriculum(h0, self.jsrl["stages"], self.jsrl["tolerance"], self.jsrl["window"],
                                        guide["train_return"], saved.get("stage", 0), saved.get("recent"))
                curriculum.guide_only = int(saved.get("guide_only", 0))
                env_wrap = lambda env: JumpStart(env, train_guide, curriculum, ctx.counter, total)  # noqa: E731
            elif self.mode == "residual":
                env_wrap = lambda env: Residual(env, train_guide, self.residual_scale)  # noqa: E731
                eval_wrap = lambda env: Residual(env, eval_guide, self.residual_scale)  # noqa: E731
            venv = make_venv(ctx.spec, ctx.counter, self.hp, ctx.seed * 1000, src / "vecnormalize.pkl", env_wrap=env_wrap)
            cls = ALGOS[self.algo]
            bc_report = state.get("bc")
            fresh = not (src / "model.zip").exists()
            if fresh:
                model = cls(self.hp.get("policy", "MlpPolicy"), venv, seed=ctx.seed, device=self.device, verbose=0,
                            **hyperparams.to_sb3_kwargs(self.hp))
                if self.mode == "bc":
                    ctx.tracker.status.phase("behaviour cloning of the guide")
                    with np.load(src / DATA_FILE) as npz:
                        data = {k: npz[k] for k in npz.files}
                    bc_report = clone(model, venv, data, gamma=float(self.hp.get("gamma", 0.99)),
                                      seed=derived_seed(ctx.seed, "bc"), **self.bc)
                    log.info("behaviour cloning: %d samples, action loss %s -> %s", bc_report["samples"],
                             bc_report["action_loss"][:1], bc_report["action_loss"][-1:])
                elif self.mode == "residual":
                    zero_action_layer(model)
            else:
                model = cls.load(str(src / "model.zip"), env=venv, device=self.device, force_reset=False)
                if self.algo == "sac" and (src / "replay_buffer.pkl").exists():
                    model.load_replay_buffer(str(src / "replay_buffer.pkl"))
                snapshot.restore(src, venv)
            signals.attach(model, ctx)
            callbacks, layers = [], []
            if curriculum is not None and self.algo == "sac" and self.jsrl["guide_transitions"]:
                if model.n_envs != 1:
                    raise ConfigError(f"method.jsrl.guide_transitions=true takes the roll-ins into SAC's replay buffer "
                                      f"with one training env, but the hyperparameters give n_envs={model.n_envs}; set "
                                      f"method.jsrl.guide_transitions=false or +method.hparams.n_envs=1")
                layers = [_jump_start_layer(env) for env in venv.unwrapped.envs]
                for layer in layers:
                    layer.keep_transitions = True
                callbacks.append(_Drain(model, layers))
            ctx.tracker.status.phase(f"phase 1: {self.algo.upper()} with the guide ({self.mode})")
            agent = deterministic_act(model, venv)

            def point() -> dict[str, Any]:
                out: dict[str, Any] = {"phase": 1, "guide_failures": failures.count}
                if curriculum is not None:
                    out["jsrl_h"] = curriculum.h
                    out["guided_return"] = statistics.fmean(
                        jump_started_returns(ctx.spec, ctx.eval_seeds(), eval_guide, agent, curriculum.h))
                if ctx.llm is not None:
                    out.update(ctx.llm.usage.curve_columns())
                return out

            def extra_state() -> dict[str, Any]:
                out = {"phase": "rl", "guide": guide, "rl_start": state["rl_start"], "bc": bc_report,
                       "guide_failures": failures.count, "guide_failure_messages": failures.messages}
                if curriculum is not None:
                    out["jsrl"] = curriculum.state()
                if ctx.llm is not None:
                    out["llm_usage"] = asdict(ctx.llm.usage)
                return out

            def write_files(model, folder: Path) -> None:
                (folder / GUIDE_FILE).write_text(code)
                if self.algo == "sac":
                    drain_into_replay(model, layers)  # a roll-in since the last step is in the buffer it saves
                    model.save_replay_buffer(str(folder / "replay_buffer.pkl"))

            callback = CurveCallback(ctx, venv, self.eval_every, int(state["next_eval"]), checkpoint=self.write_checkpoints,
                                     extra_point=point, write_files=write_files, extra_state=extra_state, stop_at=total,
                                     eval_wrap=eval_wrap)
            callback.init_callback(model)
            if fresh and (not ctx.tracker.points or ctx.tracker.points[-1]["env_steps"] < ctx.counter.steps):
                callback.evaluate_and_log()  # where RL starts from: the untrained, cloned or zero-residual agent
            # SB3's own count is the agent's steps (a roll-in's are not): the same total on every resume keeps
            # the learning-rate and clip schedules where the uninterrupted run has them; the shared counter stops
            # learning at the run's budget (stop_at)
            remaining = (total - int(state["rl_start"])) - model.num_timesteps
            if remaining > 0 and ctx.counter.steps < total:
                try:
                    model.learn(total_timesteps=remaining, callback=CallbackList([*callbacks, callback]),
                                reset_num_timesteps=False, progress_bar=False)
                except BudgetReached:
                    pass
                signals.flush(model)
            callback.final_point()
            venv.close()
            sandbox = {"train": train_session.describe(), "eval": eval_session.describe()}
        summary: dict[str, Any] = {"mode": self.mode, "algo": self.algo, "guide": guide, "guide_sandbox": sandbox,
                                   "rl_start_env_steps": state["rl_start"], "total_steps": total,
                                   "guide_failures": failures.count, "guide_failure_messages": failures.messages,
                                   "eval_wall_s": round(callback.eval_wall_s, 3)}
        if bc_report is not None:
            summary["bc"] = bc_report
        if curriculum is not None:
            summary["jsrl"] = {"h_values": curriculum.h_values, **curriculum.state(), "final_h": curriculum.h,
                               "threshold": curriculum.threshold}
        return summary
