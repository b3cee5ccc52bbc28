"""Where curve points go: an append-only CSV in the run directory (written and fsynced point by
point, so a killed run loses nothing it reported), W&B when `logger=wandb`, a progress bar, and
an atomically written `summary.json` at the end."""
from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

# Every method writes these columns; RL baselines leave the LLM ones empty.
CURVE_COLUMNS = [
    "env_steps",
    "return_mean",
    "return_std",
    "success_rate",
    "train_return",
    "eval_episodes",
    "llm_calls",
    "llm_tokens",
    "llm_cost_usd",
    "wall_s",
]
CURVE_FILE = "curve.csv"
SUMMARY_FILE = "summary.json"
WANDB_ID_FILE = "wandb_run_id.txt"


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_curve(run_dir: Path) -> list[dict[str, Any]]:
    """Curve rows as dicts of floats (None for empty cells); a torn last line is dropped."""
    path = Path(run_dir) / CURVE_FILE
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            if None in row.values() or len(row) != len(reader.fieldnames or []):
                continue  # torn write from a killed process
            rows.append({k: (float(v) if v != "" else None) for k, v in row.items()})
    return rows


class Tracker:
    """Receives curve points from a method and fans them out. `extra_columns` are
    method-specific metrics (e.g. ULTRA's override counts) appended after the core ones."""

    def __init__(
        self,
        run_dir: Path,
        logger_cfg: dict[str, Any],
        run_meta: dict[str, Any],
        config: dict[str, Any],
        extra_columns: list[str] | None = None,
        total_steps: int | None = None,
        resume_from_steps: int | None = None,
        wall_offset: float = 0.0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.columns = CURVE_COLUMNS + [c for c in (extra_columns or []) if c not in CURVE_COLUMNS]
        self.meta = run_meta
        self.points: list[dict[str, Any]] = []
        self._t0 = time.monotonic() - wall_offset
        self._curve_path = self.run_dir / CURVE_FILE
        self._wandb = _open_wandb(self.run_dir, logger_cfg, run_meta, config) if logger_cfg.get("backend") == "wandb" else None
        self._prepare_curve(resume_from_steps)
        show = logger_cfg.get("progress", True)
        self._bar = tqdm(
            total=total_steps,
            initial=int(self.points[-1]["env_steps"]) if self.points else 0,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not show,
            file=sys.stderr,
            desc=f"{run_meta.get('method')}/{run_meta.get('env')}",
            mininterval=1.0,
        )
        self._bar_steps = self._bar.n

    # ---- curve file -------------------------------------------------------------------
    def _prepare_curve(self, resume_from_steps: int | None) -> None:
        """Fresh run: a header. Resume: keep points up to the checkpoint, drop later ones
        (they will be produced again), so the curve has no duplicate and no gap."""
        if resume_from_steps is None or not self._curve_path.exists():
            self.points = []
        else:
            self.points = [p for p in read_curve(self.run_dir) if p["env_steps"] <= resume_from_steps]
        tmp = self._curve_path.with_name(f".{CURVE_FILE}.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            for p in self.points:
                writer.writerow({k: _cell(p.get(k)) for k in self.columns})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._curve_path)

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self._t0

    def log_point(self, **point: Any) -> dict[str, Any]:
        """Append one curve point. `env_steps` must grow strictly; `wall_s` is filled in."""
        if "env_steps" not in point:
            raise ValueError("a curve point needs env_steps")
        if self.points and point["env_steps"] <= self.points[-1]["env_steps"]:
            raise ValueError(
                f"env_steps must increase: got {point['env_steps']} after {self.points[-1]['env_steps']}"
            )
        point.setdefault("wall_s", round(self.wall_s, 3))
        unknown = set(point) - set(self.columns)
        if unknown:
            raise ValueError(f"curve point has columns the tracker was not told about: {sorted(unknown)}")
        self.points.append(point)
        with open(self._curve_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _cell(point.get(k)) for k in self.columns}
            )
            f.flush()
            os.fsync(f.fileno())
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in point.items() if v is not None})
        self.progress(int(point["env_steps"]), latest=point)
        return point

    # ---- progress -----------------------------------------------------------------------
    def progress(self, env_steps: int, latest: dict[str, Any] | None = None) -> None:
        if env_steps > self._bar_steps:
            self._bar.update(env_steps - self._bar_steps)
            self._bar_steps = env_steps
        if latest is not None:
            post = {"return": f"{latest.get('return_mean', float('nan')):.4g}"}
            if latest.get("success_rate") is not None:
                post["success"] = f"{latest['success_rate']:.2f}"
            self._bar.set_postfix(post, refresh=False)

    # ---- end ----------------------------------------------------------------------------
    def finish(self, status: str, extra: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
        self._bar.close()
        summary = self.summarize(status, extra, error)
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)
        if self._wandb is not None:
            for k, v in summary.items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    self._wandb.summary[k] = v
            self._wandb.finish(exit_code=0 if status == "done" else 1)
            self._wandb = None
        return summary

    def summarize(self, status: str, extra: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
        pts = self.points
        returns = [p["return_mean"] for p in pts if _num(p.get("return_mean"))]
        successes = [p["success_rate"] for p in pts if _num(p.get("success_rate"))]
        last = pts[-1] if pts else {}
        summary = {
            **self.meta,
            "status": status,
            "error": error,
            "n_points": len(pts),
            "total_env_steps": int(last.get("env_steps") or 0),
            "final_return": returns[-1] if returns else None,
            "best_return": max(returns) if returns else None,
            "final_success_rate": successes[-1] if successes else None,
            "best_success_rate": max(successes) if successes else None,
            "llm_calls": last.get("llm_calls"),
            "llm_tokens": last.get("llm_tokens"),
            "llm_cost_usd": last.get("llm_cost_usd"),
            "wall_s": round(self.wall_s, 3),
        }
        summary.update(extra or {})
        return summary


def _cell(v: Any) -> Any:
    return "" if v is None else v


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not math.isnan(v)


def _open_wandb(run_dir: Path, cfg: dict[str, Any], meta: dict[str, Any], config: dict[str, Any]):
    """One W&B run per run directory; its id is kept there so a resumed run continues it."""
    import wandb

    id_file = run_dir / WANDB_ID_FILE
    run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id)
    run = wandb.init(
        project=cfg.get("project"),
        entity=cfg.get("entity"),
        mode=cfg.get("mode", "offline"),
        dir=str(run_dir),
        id=run_id,
        resume="allow",
        group=cfg.get("group"),
        tags=[str(t) for t in (cfg.get("tags") or [])],
        name=cfg.get("name"),
        config=config,
        job_type=str(meta.get("method")),
        settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
    )
    # Every metric is plotted against env_steps, the same x-axis for every method.
    run.define_metric("env_steps")
    run.define_metric("*", step_metric="env_steps")
    return run
