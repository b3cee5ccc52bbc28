"""The glue `run.py` calls: build the parts named by the config, guard the run directory,
hand a RunContext to the method, and always leave a summary behind."""
from __future__ import annotations

import logging
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from llmrl import rundir
from llmrl.checkpoint import Checkpoint, CheckpointDir
from llmrl.counting import StepCounter
from llmrl.envs.spec import EnvSpec
from llmrl.errors import ConfigError
from llmrl.seeding import eval_seeds, seed_everything
from llmrl.tracking import SUMMARY_FILE, Tracker

log = logging.getLogger(__name__)


class Method(Protocol):
    name: str
    needs_llm: bool
    extra_columns: list[str]

    def budget(self, spec: EnvSpec) -> int: ...

    def train(self, ctx: "RunContext", checkpoint: Checkpoint | None) -> dict[str, Any]: ...


@dataclass
class RunContext:
    """Everything a method needs from the outside world, and nothing else."""

    cfg: DictConfig
    spec: EnvSpec
    run_dir: Path
    seed: int
    tracker: Tracker
    counter: StepCounter
    checkpoints: CheckpointDir
    llm: Any = None

    def eval_seeds(self) -> list[int]:
        return eval_seeds(self.seed, int(self.cfg.eval_seed_offset), self.spec.eval_episodes)


def _llm_summary(llm: Any) -> dict[str, Any]:
    if llm is None:
        return {}
    u = llm.usage
    return {"llm_usage": {"calls": u.calls, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                          "cost_usd": round(u.cost_usd, 6), "cache_hits": u.cache_hits, "http_calls": u.http_calls,
                          "spent_usd": round(u.spent_usd, 6), "failures": u.failures}, "llm_model": llm.settings.model}


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative integer, e.g. seed=0")
    return seed


def resume_requested(value: Any) -> bool:
    """`resume`: true / false, or auto = true only in a multirun (HydraConfig's mode)."""
    if isinstance(value, bool):
        return value
    if value == "auto":
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    raise ConfigError(f"resume={value!r} must be true, false or auto")


def _stop_on_sigterm(tracker: Tracker, run_dir: Path) -> Any:
    """SIGTERM is how SLURM (and most schedulers) stop a job that is requeued, preempted or
    cancelled. The run stops at once without returning: what it reported (curve.csv, the last
    checkpoint) stays as it is, summary.json says `interrupted`, the sweep record says
    `preempted`, and the requeued job (or resume=true) continues from the checkpoint. Returning
    normally instead would hand the launcher a result and end the job's place in the sweep."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        log.warning("SIGTERM: stopping now; the run continues from its last checkpoint when requeued or resumed")
        try:
            from llmrl.tracking import write_json_atomic

            write_json_atomic(run_dir / SUMMARY_FILE, tracker.summarize(
                "interrupted", None, "stopped by SIGTERM (requeue, preemption or cancel); resume continues from the last checkpoint"))
            hc = HydraConfig.get()
            from hydra.types import RunMode

            if hc.mode == RunMode.MULTIRUN:
                from llmrl.sweeps import record

                record.update(Path(hc.sweep.dir), run_dir, status="preempted", slurm_job_id=record.slurm_job_id())
        finally:
            logging.shutdown()
            os._exit(128 + signal.SIGTERM)

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    """The handler belongs to one run: a worker process that goes on to other work (a local
    launcher's pool) must not write this run's summary when it is later terminated."""
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _apply_method_overrides(cfg: DictConfig) -> None:
    """Merge `method_overrides.<method.name>`, then `method_overrides.<method.name>@<env.name>`,
    into `method` (the saved config.yaml shows the result)."""
    table = cfg.get("method_overrides") or {}
    for key in (cfg.method.name, f"{cfg.method.name}@{cfg.env.name}"):
        extra = table.get(key)
        if extra:
            with open_dict(cfg):
                cfg.method = OmegaConf.merge(cfg.method, extra)


def _build(node: DictConfig, group: str) -> Any:
    """Instantiate a `_target_` node; a ConfigError from inside keeps its one-line message."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, TypeError) and "unexpected keyword" in str(cause):
            raise ConfigError(f"{group}: {cause} (check the keys under {group}. in conf/{group}/)") from None
        raise


def run(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    seed = _check_seed(cfg.seed)
    _apply_method_overrides(cfg)
    spec: EnvSpec = _build(cfg.env, "env")
    method: Method = _build(cfg.method, "method")
    total = method.budget(spec)
    resume = resume_requested(cfg.resume)
    from llmrl.sandbox import SandboxSettings

    SandboxSettings.from_config(cfg.sandbox)  # a bad sandbox value is one line now, not after the LLM started

    checkpoints = CheckpointDir(run_dir)
    with ExitStack() as stack:
        stack.enter_context(rundir.exclusive(run_dir))  # one process per run directory, from the check to the end
        start = rundir.prepare(cfg, run_dir, resume)
        if start.finished is not None:
            return start.finished
        checkpoint = start.checkpoint
        llm = None
        if method.needs_llm:  # built and checked before any environment work (DESIGN §3.3)
            if cfg.llm.name == "none":
                raise ConfigError(f"method={method.name} needs an LLM: choose one with llm=local|gemini|gpt|claude|ollama|vllm")
            from llmrl.llm import open_llm

            # whose draws these are: a method may share them with another (RL started from PromptPO's policy
            # draws PromptPO's replies, so a seed's hybrids and PromptPO alone start from the same rounds)
            identity = {"experiment": str(cfg.experiment_name), "env": spec.name,
                        "method": getattr(method, "llm_identity", method.name), "seed": seed}
            if cfg.get("variant"):
                identity["variant"] = str(cfg.variant)
            llm = stack.enter_context(open_llm(cfg.llm, run_dir, identity))
        return _train(cfg, run_dir, seed, spec, method, total, checkpoint, checkpoints, llm)


def _train(cfg, run_dir, seed, spec, method, total, checkpoint, checkpoints, llm) -> dict[str, Any]:
    from llmrl.llm.errors import LLMBudgetExhausted

    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    seed_everything(seed)
    meta = {
        "method": method.name,
        "variant": str(cfg.get("variant") or ""),
        "env": spec.name,
        "llm": str(cfg.llm.name),
        "seed": seed,
        "experiment": str(cfg.experiment_name),
        "run_dir": str(run_dir),
    }
    changes = rundir.recorded_changes(run_dir)
    if changes:
        meta["config_changes"] = changes  # what resume_allow_changes let through, and when
    # the effective settings (e.g. SB3's hyperparameters after the per-env table) are known before training
    effective = getattr(method, "effective_config", dict)()
    if effective:
        from llmrl.tracking import write_json_atomic

        write_json_atomic(run_dir / "effective_config.json", effective)
    tracker = Tracker(
        run_dir,
        OmegaConf.to_container(cfg.logger, resolve=True),
        meta,
        {**OmegaConf.to_container(cfg, resolve=True), "effective": effective},
        extra_columns=method.extra_columns,
        total_steps=total,
        resume_from_steps=checkpoint.env_steps if checkpoint else None,
        wall_offset=checkpoint.wall_s if checkpoint else 0.0,
        llm_status=llm is not None,
    )
    if llm is not None:  # every reply, cached or fresh, moves the status line
        llm.listeners.append(lambda c: (tracker.status.reply(c), tracker.status.usage(llm.usage.calls, llm.usage.cost_usd)))
    ctx = RunContext(
        cfg=cfg,
        spec=spec,
        run_dir=run_dir,
        seed=seed,
        tracker=tracker,
        counter=StepCounter(checkpoint.env_steps if checkpoint else 0),
        checkpoints=checkpoints,
        llm=llm,
    )
    previous_handler = _stop_on_sigterm(tracker, run_dir)
    try:
        try:
            extra = method.train(ctx, checkpoint)
        except LLMBudgetExhausted as exc:  # a cap, not a failure: everything reported so far stands
            log.warning("stopping: %s", exc)
            return tracker.finish("budget_exhausted", _llm_summary(llm), error=str(exc))
        except KeyboardInterrupt:
            tracker.finish("interrupted", error="interrupted by the user (Ctrl-C); resume with resume=true")
            raise
        except Exception as exc:
            tracker.finish("failed", error="".join(traceback.format_exception_only(exc)).strip())
            raise
        summary = tracker.finish("done", {**(extra or {}), **_llm_summary(llm)})
        log.info("run complete: %s", {k: summary[k] for k in ("total_env_steps", "final_return", "best_return")})
        return summary
    finally:
        _restore_sigterm(previous_handler)
