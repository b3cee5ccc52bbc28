"""Where curve points go: an append-only CSV in the run directory (written and fsynced point by
point, so a killed run loses nothing it reported), W&B when `logger=wandb`, a progress bar, and
an atomically written `summary.json` at the end. Training signals that are not curve points
(SB3's losses, PromptPO's per-round figures) go to `metrics.jsonl` and to W&B, against the same
env_steps; artifacts (models, policies) go to W&B as artifacts.

W&B's own step is env_steps, and a resumed run logs only what comes after the last step W&B
already holds (read back from the earlier offline parts with W&B's own reader, or from the
server online), so the parts of a resumed run sync into one history with no step logged twice
and none lost: what the first part logged after the checkpoint is recomputed identically (resume
is exact) and not sent again, what it lost to the kill is sent by the second."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from llmrl.status import StatusLine

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
METRICS_FILE = "metrics.jsonl"
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
        llm_status: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.columns = CURVE_COLUMNS + [c for c in (extra_columns or []) if c not in CURVE_COLUMNS]
        self.meta = run_meta
        self.points: list[dict[str, Any]] = []
        self._t0 = time.monotonic() - wall_offset
        self._curve_path = self.run_dir / CURVE_FILE
        self._wandb = _open_wandb(self.run_dir, logger_cfg, run_meta, config) if logger_cfg.get("backend") == "wandb" else None
        self._wandb_mode = logger_cfg.get("mode", "offline")
        # steps up to this one are in W&B's history of this run already (identical: resume is exact)
        self._wandb_floor = _wandb_logged_up_to(self._wandb, self.run_dir) if self._wandb is not None else -1
        self._prepare_curve(resume_from_steps)
        self._prepare_metrics(resume_from_steps)
        self._wandb_catch_up()
        show = bool(logger_cfg.get("progress", True))
        desc = f"{run_meta.get('method')}{run_meta.get('variant') or ''}/{run_meta.get('env')}/s{run_meta.get('seed')}"
        # LLM methods: a status line (phase, replies, tokens/s, cost); others: a steps bar with an ETA
        self.status = StatusLine(desc, enabled=show and llm_status)
        self._bar = tqdm(
            total=total_steps,
            initial=int(self.points[-1]["env_steps"]) if self.points else 0,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not show or llm_status,
            file=sys.stderr,
            desc=desc,
            mininterval=1.0,
        )
        self._bar_steps = self._bar.n

    # ---- curve file -------------------------------------------------------------------
    def _prepare_curve(self, resume_from_steps: int | None) -> None:
        """Fresh run: a header. Resume: keep points up to the checkpoint, drop later ones
        (they will be produced again), so the curve has no duplicate and no gap."""
        kept: list[str] = []
        if resume_from_steps is None or not self._curve_path.exists():
            self.points = []
        else:
            self.points = [p for p in read_curve(self.run_dir) if p["env_steps"] <= resume_from_steps]
            lines = self._curve_path.read_text().splitlines(keepends=True)[1:]
            kept = lines[:len(self.points)]  # the kept points exactly as they were written
        tmp = self._curve_path.with_name(f".{CURVE_FILE}.tmp")
        with open(tmp, "w", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writeheader()
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._curve_path)

    @property
    def label(self) -> str:
        return run_label(self.meta)

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self._t0

    def log_point(self, replace_last: bool = False, **point: Any) -> dict[str, Any]:
        """Append one curve point. `env_steps` must grow strictly; `wall_s` is filled in.
        `replace_last`: the point replaces the last one, at the same env_steps (a model updated
        after its last evaluation, with no env step in between, evaluated again at the end)."""
        if "env_steps" not in point:
            raise ValueError("a curve point needs env_steps")
        if replace_last:
            if not self.points or point["env_steps"] != self.points[-1]["env_steps"]:
                raise ValueError("replace_last needs a point at the last point's env_steps")
            self.points.pop()
            lines = self._curve_path.read_text().splitlines(keepends=True)
            tmp = self._curve_path.with_name(f".{CURVE_FILE}.tmp")
            tmp.write_text("".join(lines[:-1]))
            os.replace(tmp, self._curve_path)
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
        self._to_wandb({k: v for k, v in point.items() if v is not None}, int(point["env_steps"]))
        self.progress(int(point["env_steps"]), latest=point)
        return point

    # ---- training signals and artifacts ------------------------------------------------------
    def _prepare_metrics(self, resume_from_steps: int | None) -> None:
        """Resume: keep the rows up to the checkpoint, as for the curve."""
        path = self.run_dir / METRICS_FILE
        if not path.exists():
            return
        kept = []
        if resume_from_steps is not None:
            for line in path.read_text().splitlines(keepends=True):
                try:
                    if json.loads(line)["env_steps"] <= resume_from_steps:
                        kept.append(line)
                except (json.JSONDecodeError, KeyError):
                    break  # a torn last line
        path.write_text("".join(kept))

    def rewind(self, env_steps: int) -> None:
        """Drop curve points and metrics after `env_steps` (a method that replaces what it
        logged, e.g. a resumed refinement that switches to the shared sub-optimal agent). An
        online or offline W&B run keeps the dropped history: its steps only go forward."""
        self._prepare_curve(env_steps)
        self._prepare_metrics(env_steps)

    def continue_wall_from(self, wall_s: float) -> None:
        """Wall-clock time goes on from `wall_s` (points taken over from another run, e.g. the
        shared sub-optimal agent's pre-training, carry that run's time)."""
        self._t0 = min(self._t0, time.monotonic() - wall_s)

    def _wandb_catch_up(self) -> None:
        """What an earlier part kept locally but W&B never got (lost with the killed process
        before it was written): sent now, in step order, before anything new."""
        if self._wandb is None:
            return
        rows = [(int(p["env_steps"]), {k: v for k, v in p.items() if v is not None}) for p in self.points]
        path = self.run_dir / METRICS_FILE
        if path.exists():
            rows += [(r["env_steps"], r) for r in map(json.loads, path.read_text().splitlines())]
        for step, row in sorted(rows, key=lambda x: x[0]):
            self._to_wandb(self._wandb_values(row), step)

    @staticmethod
    def _wandb_values(row: dict[str, Any]) -> dict[str, Any]:
        import wandb

        return {k: (wandb.Histogram(v) if isinstance(v, list) and v else v) for k, v in row.items() if v is not None and v != []}

    def log_metrics(self, env_steps: int, metrics: dict[str, Any]) -> None:
        """Signals that are not curve points (losses, per-round figures), against env_steps.
        Lists of numbers become histograms in W&B."""
        row = {"env_steps": int(env_steps), **metrics}
        with open(self.run_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(row, default=_json_default) + "\n")
        if self._wandb is not None:
            self._to_wandb(self._wandb_values(row), int(env_steps))

    def _to_wandb(self, row: dict[str, Any], step: int) -> None:
        if self._wandb is not None and step > self._wandb_floor:
            self._wandb.log(row, step=step)

    def log_artifact(self, name: str, kind: str, paths: list[Path], metadata: dict[str, Any] | None = None) -> None:
        """Files behind a curve (a model, a policy) as a W&B artifact of this run; offline, they are
        uploaded with the run by `wandb sync`."""
        if self._wandb is None:
            return
        import wandb

        artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "_", name), type=kind, metadata=metadata or {})
        for path in map(Path, paths):
            if path.is_dir():
                artifact.add_dir(str(path), name=path.name)
            elif path.is_file():
                artifact.add_file(str(path))
        self._wandb.log_artifact(artifact)

    # ---- progress -----------------------------------------------------------------------
    def progress(self, env_steps: int, latest: dict[str, Any] | None = None) -> None:
        self.status.steps(env_steps, latest)
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
        self.status.close()
        self._bar.close()
        summary = self.summarize(status, extra, error)
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)
        if self._wandb is not None:
            for k, v in summary.items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    self._wandb.summary[k] = v
            self._wandb.finish(exit_code=0 if status == "done" else 1)
            self._wandb = None
            if self._wandb_mode == "offline":
                parts = self.run_dir / "wandb" / "offline-run-*"
                print(f"W&B run stored offline; upload it (all its parts, in order) with: wandb sync {parts}",
                      file=sys.stderr)
        return summary

    def summarize(self, status: str, extra: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
        pts = self.points
        returns = [p["return_mean"] for p in pts if _num(p.get("return_mean"))]
        successes = [p["success_rate"] for p in pts if _num(p.get("success_rate"))]
        # best_*: the best evaluation after training started; the untrained step-0 evaluation is not a result
        trained = [p for p in pts if (p.get("env_steps") or 0) > 0] or pts
        best_returns = [p["return_mean"] for p in trained if _num(p.get("return_mean"))]
        best_successes = [p["success_rate"] for p in trained if _num(p.get("success_rate"))]
        last = pts[-1] if pts else {}
        summary = {
            **self.meta,
            "status": status,
            "error": error,
            "n_points": len(pts),
            "total_env_steps": int(last.get("env_steps") or 0),
            "final_return": returns[-1] if returns else None,
            "best_return": max(best_returns) if best_returns else None,
            "final_success_rate": successes[-1] if successes else None,
            "best_success_rate": max(best_successes) if best_successes else None,
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


def _wandb_logged_up_to(run, run_dir: Path) -> int:
    """The last step W&B already holds for this run: from the server when online, else from the
    earlier offline parts in the run directory, read with W&B's own reader (`wandb leet inspect`)."""
    import subprocess

    last = int(run.step) - 1 if getattr(run, "resumed", False) and run.step else -1
    own = Path(run.dir).parent.resolve()
    reader = Path(sys.executable).parent / "wandb"
    for path in sorted((run_dir / "wandb").glob(f"offline-run-*/run-{run.id}.wandb")):
        if path.parent.resolve() == own:
            continue
        try:
            out = subprocess.run([str(reader), "leet", "inspect", "--json", str(path)], capture_output=True, text=True,
                                 timeout=300).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type") == "history":
                last = max(last, int(record["history"]["item"].get("_step", -1)))
    return last


def run_label(meta: dict[str, Any]) -> str:
    """ppo-cartpole-s0, promptpo-cartpole-local-s0, ppo+learning_rate=0.001-c184e9-cartpole-s0."""
    llm = f"-{meta.get('llm')}" if meta.get("llm") not in (None, "none") else ""
    return f"{meta.get('method')}{meta.get('variant') or ''}-{meta.get('env')}{llm}-s{meta.get('seed')}"


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
        name=cfg.get("name") or run_label(meta),
        config=config,
        job_type=str(meta.get("method")),
        settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
    )
    # Every metric is plotted against env_steps, the same x-axis for every method.
    run.define_metric("env_steps")
    run.define_metric("*", step_metric="env_steps")
    return run
