"""Who may use a run directory. A directory that holds a run (a curve point, a checkpoint or a
finished summary) is continued only with `resume`, and only with the same config: a difference
the user did not allow with `resume_allow_changes` is refused with a one-line diff, whether the
run is finished or not. What was allowed is recorded (`config_changes.json`, and the summary).
A directory whose run failed before its first curve point holds nothing worth keeping and is
simply used again. One process at a time uses a directory (`exclusive`): two sweeps that overlap, or
a run started again while it still runs, would otherwise both resume it and interleave their writes."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml
from omegaconf import DictConfig, OmegaConf

from llmrl.checkpoint import Checkpoint, CheckpointDir
from llmrl.errors import ConfigError
from llmrl.identity import _covered, config_diff, describe_diff
from llmrl.tracking import CURVE_FILE, SUMMARY_FILE, read_curve

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
CHANGES_FILE = "config_changes.json"
LOCK_FILE = ".run.lock"   # flock-ed while a process uses the directory; the kernel drops it when that process dies


@dataclass
class Start:
    """How the run starts: from scratch, from a checkpoint, or not at all (already done)."""

    checkpoint: Checkpoint | None = None
    finished: dict[str, Any] | None = None          # the summary of a finished run left as it is
    changes: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for this process, or refuse at once naming the holder. An flock,
    not a pid file: a run killed with -9 leaves nothing that blocks its resumption."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"{run_dir} is in use by another process (pid {holder}, e.g. an overlapping sweep or the same command "
            f"still running); wait for it to finish or stop it (kill {holder}; it resumes from its last checkpoint), "
            f"then run this again"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def holds_a_run(run_dir: Path) -> bool:
    if read_curve(run_dir) or CheckpointDir(run_dir).load() is not None:
        return True
    summary = run_dir / SUMMARY_FILE
    return summary.exists() and json.loads(summary.read_text()).get("status") == "done"


def _ignored(cfg: DictConfig) -> list[str]:
    return [*(cfg.run_identity.bookkeeping or []), "method_overrides"]


def prepare(cfg: DictConfig, run_dir: Path, resume: bool) -> Start:
    new = OmegaConf.to_container(cfg, resolve=True)
    allowed = [str(k) for k in (cfg.get("resume_allow_changes") or [])]
    if not holds_a_run(run_dir):
        _clear_leftovers(run_dir)
        if resume:
            _no_run_to_resume(cfg, run_dir, new)
        return Start()
    old_path = run_dir / CONFIG_FILE
    old = yaml.safe_load(old_path.read_text()) if old_path.exists() else None
    diff = config_diff(old, new, _ignored(cfg)) if old is not None else []
    refused = [d for d in diff if not _covered(d[0], allowed)]
    if refused:
        keys = ",".join(sorted({d[0] for d in refused}))
        raise ConfigError(
            f"{run_dir} holds a run of another config ({describe_diff(refused)}); continue it with the new values with "
            f"resume=true resume_allow_changes=[{keys}], or give this config a directory of its own (experiment_name=...)"
        )
    if not resume:
        raise ConfigError(
            f"{run_dir} already holds a run; pass resume=true to continue it, "
            f"or choose another directory with experiment_name=... or hydra.run.dir=..."
        )
    changes = [{"key": k, "from": o, "to": n} for k, o, n in diff]
    summary_path = run_dir / SUMMARY_FILE
    if summary_path.exists() and not changes:
        previous = json.loads(summary_path.read_text())
        if previous.get("status") == "done":
            log.info("run in %s is already complete; nothing to resume", run_dir)
            return Start(finished=previous)
    if changes:
        _record(run_dir, changes)
        log.warning("resuming %s with changed settings (allowed by resume_allow_changes): %s", run_dir,
                    describe_diff([(c["key"], c["from"], c["to"]) for c in changes]))
    checkpoint = CheckpointDir(run_dir).load()
    if checkpoint is not None:
        log.info("resuming %s from env_steps=%d", run_dir, checkpoint.env_steps)
    else:
        log.info("%s holds no checkpoint yet: starting that run from the beginning", run_dir)
    return Start(checkpoint=checkpoint, changes=changes)


def recorded_changes(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / CHANGES_FILE
    return json.loads(path.read_text()) if path.exists() else []


def _record(run_dir: Path, changes: list[dict[str, Any]]) -> None:
    history = recorded_changes(run_dir)
    history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "changes": changes})
    tmp = run_dir / f".{CHANGES_FILE}.tmp"
    tmp.write_text(json.dumps(history, indent=1, default=str))
    tmp.replace(run_dir / CHANGES_FILE)


def _clear_leftovers(run_dir: Path) -> None:
    """A run that stopped before its first point left only a header, a config and perhaps a
    failed summary: nothing a corrected command should trip over."""
    for name in (CURVE_FILE, SUMMARY_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for name in ("checkpoint.new", "checkpoint.old"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _no_run_to_resume(cfg: DictConfig, run_dir: Path, new: dict[str, Any]) -> None:
    """resume=true where nothing is: if the same env/method/llm/seed ran with other settings
    next door, the user most likely meant that run, and is told what differs."""
    if str(cfg.get("resume")) != "True":
        return  # resume=auto in a sweep: new runs are expected
    parts = run_dir.parts
    if len(parts) < 4 or parts[-1] != f"seed_{cfg.seed}" or parts[-2] != str(cfg.llm.name):
        return
    for sibling in sorted(run_dir.parents[2].glob(f"{cfg.method.name}*/{parts[-2]}/{parts[-1]}")):
        if sibling != run_dir and (sibling / CONFIG_FILE).exists() and holds_a_run(sibling):
            old = yaml.safe_load((sibling / CONFIG_FILE).read_text())
            diff = config_diff(old, new, [*_ignored(cfg), "variant", "run_name"])
            raise ConfigError(
                f"resume=true, but {run_dir} holds no run; {sibling} holds this env/method/llm/seed with another config "
                f"({describe_diff(diff)}); to continue that run with the new values, add "
                f"resume_allow_changes=[{','.join(sorted({d[0] for d in diff}))}] and hydra.run.dir={sibling}"
            )
