"""The sweep record: one file, `<sweep dir>/sweep_record.json`, listing every run of a multirun
with its overrides, status (pending / running / done / failed / preempted / budget_exhausted /
interrupted / skipped: a method x env pair that cannot exist), run directory, SLURM job id and,
for a failed or skipped run, why. Entries are keyed by run directory (relative to the sweep
directory), so two sweeps sharing a sweep directory keep each other's entries, and relaunching a
sweep updates its runs' entries. Jobs update their own
entry under a file lock, so concurrent jobs on one file system never lose each other's updates;
a damaged file is reported, kept aside and rebuilt from the run directories.
A Hydra callback (configured in conf/config.yaml) keeps it current for every launcher."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)
RECORD_FILE = "sweep_record.json"


@contextmanager
def _locked(sweep_dir: Path):
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / f".{RECORD_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / RECORD_FILE
    if not path.exists():
        return {"runs": {}}
    try:
        record = json.loads(path.read_text())
        if isinstance(record, dict) and isinstance(record.get("runs"), dict):
            return record
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    return _rebuild(Path(sweep_dir))


def _rebuild(sweep_dir: Path) -> dict[str, Any]:
    """The record from the run directories, when the file is damaged (e.g. cut short by a full disk)."""
    broken = sweep_dir / f"{RECORD_FILE}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
    os.replace(sweep_dir / RECORD_FILE, broken)
    log.warning("%s was damaged (kept as %s); rebuilt from the run directories", sweep_dir / RECORD_FILE, broken.name)
    runs = {}
    for cfg in sorted(sweep_dir.rglob("config.yaml")):
        run_dir = cfg.parent
        if run_dir.name == ".hydra" or not (run_dir / "curve.csv").exists():
            continue
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
        overrides = run_dir / ".hydra" / "overrides.yaml"
        runs[key_of(sweep_dir, run_dir)] = {
            "run_dir": str(run_dir.resolve()), "status": summary.get("status", "incomplete"), "error": summary.get("error"),
            "final_return": summary.get("final_return"), "total_env_steps": summary.get("total_env_steps"),
            "overrides": yaml.safe_load(overrides.read_text()) if overrides.exists() else None, "rebuilt": True}
    record = {"runs": runs, "sweep_dir": str(sweep_dir.resolve())}
    _write(sweep_dir, record)
    return record


def key_of(sweep_dir: Path, run_dir: Path) -> str:
    """An entry's key: the run directory relative to the sweep directory."""
    return os.path.relpath(Path(run_dir).resolve(), Path(sweep_dir).resolve())


def _write(sweep_dir: Path, record: dict[str, Any]) -> None:
    tmp = sweep_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, sweep_dir / RECORD_FILE)


def update(sweep_dir: Path, run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the entry of the run in `run_dir` (atomically: temp file + rename)."""
    sweep_dir = Path(sweep_dir).resolve()
    with _locked(sweep_dir):
        record = read(sweep_dir)
        entry = record["runs"].setdefault(key_of(sweep_dir, run_dir), {"run_dir": str(Path(run_dir).resolve())})
        entry.update({k: v for k, v in fields.items() if v is not None or k == "error"})
        entry["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        record["sweep_dir"] = str(sweep_dir)
        _write(sweep_dir, record)
        return entry


def slurm_job_id() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


class SweepRecord(Callback):
    """Runs inside each job: `running` at its start; at its end the status the run wrote in its
    summary.json (or `failed` with the exception when there is none)."""

    def _where(self, config: DictConfig) -> tuple[Path, int, Path] | None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        return Path(hc.sweep.dir), int(hc.job.num), Path(hc.runtime.output_dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        where = self._where(config)
        if where is None:
            return
        from hydra.core.hydra_config import HydraConfig

        sweep_dir, num, run_dir = where
        update(sweep_dir, run_dir, status="running", overrides=list(HydraConfig.get().overrides.task), job_num=num,
               slurm_job_id=slurm_job_id(), restarts=int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0), error=None)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        where = self._where(config)
        if where is None:
            return
        sweep_dir, num, run_dir = where
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        status, error = summary.get("status"), summary.get("error")
        current = read(sweep_dir)["runs"].get(key_of(sweep_dir, run_dir), {})
        if not summary and current.get("status") == "skipped":
            return  # the job said why it did not run
        failed = getattr(getattr(job_return, "status", None), "name", "") == "FAILED"
        if failed:
            exc = job_return._return_value
            status = "failed" if status in (None, "done") else status
            error = error or f"{type(exc).__name__}: {exc}"
        update(sweep_dir, run_dir, status=status or "failed", error=error, final_return=summary.get("final_return"),
               total_env_steps=summary.get("total_env_steps"), summary=str(summary_path) if summary else None)
