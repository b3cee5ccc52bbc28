"""Collect runs into tidy pandas tables. Every run directory found is listed, finished or not:
a run without summary.json is `incomplete`, a failed one keeps its error, so nothing is
silently dropped from a comparison."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd
import yaml

from llmrl.tracking import CURVE_FILE, SUMMARY_FILE, read_curve

RUN_COLUMNS = ["experiment", "method", "env", "llm", "seed", "status", "error", "final_return", "best_return",
               "final_success_rate", "best_success_rate", "total_env_steps", "n_points", "llm_calls", "llm_tokens",
               "llm_cost_usd", "wall_s", "run_dir"]
CURVE_METRICS = ["env_steps", "return_mean", "return_std", "success_rate", "train_return", "llm_calls", "llm_tokens",
                 "llm_cost_usd", "wall_s"]


def find_run_dirs(roots: Iterable[Path]) -> list[Path]:
    """Directories holding a run's resolved config.yaml (Hydra's own copies under .hydra are skipped)."""
    found = set()
    for root in roots:
        root = Path(root)
        for cfg in root.rglob("config.yaml"):
            if cfg.parent.name != ".hydra" and ((cfg.parent / CURVE_FILE).exists() or (cfg.parent / SUMMARY_FILE).exists()):
                found.add(cfg.parent.resolve())
    return sorted(found)


def _run_record(run_dir: Path) -> tuple[dict, list[dict]]:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    # a variant (e.g. another learning rate) is a method of its own in every table, never more seeds of the default
    method = f"{(cfg.get('method') or {}).get('name')}{cfg.get('variant') or ''}"
    llm = (cfg.get("llm") or {}).get("name", "none")
    node = cfg.get("method") or {}
    if "guide_policy" in node:  # RL from a guide: where the guide came from is part of what the method is
        method += " (file guide)" if node.get("guide_policy") else f" ({llm} PromptPO guide)"
    if method in ("ppo", "sac"):
        llm = "none"  # an RL baseline uses no LLM, whatever llm group was composed
    record = {"experiment": cfg.get("experiment_name"), "method": method, "env": (cfg.get("env") or {}).get("name"),
              "llm": llm, "seed": cfg.get("seed"), "run_dir": str(run_dir)}
    curve = read_curve(run_dir)
    summary_path = run_dir / SUMMARY_FILE
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        record.update({k: summary.get(k) for k in RUN_COLUMNS if k in summary and k not in record})
        record["status"] = summary.get("status", "unknown")
    else:
        last = curve[-1] if curve else {}
        returns = [p["return_mean"] for p in curve if p.get("return_mean") is not None]
        record.update(status="incomplete", error="no summary.json: the run is still going, or was killed",
                      final_return=returns[-1] if returns else None, best_return=max(returns) if returns else None,
                      total_env_steps=last.get("env_steps"), n_points=len(curve))
    return record, curve


def collect(roots: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves): one row per run; one row per curve point with the run's identifiers."""
    runs, points = [], []
    for run_dir in find_run_dirs(roots):
        record, curve = _run_record(run_dir)
        runs.append(record)
        for p in curve:
            points.append({**{k: record[k] for k in ("experiment", "method", "env", "llm", "seed", "status")},
                           **{k: p.get(k) for k in CURVE_METRICS}})
    run_df = pd.DataFrame(runs, columns=RUN_COLUMNS) if runs else pd.DataFrame(columns=RUN_COLUMNS)
    curve_df = pd.DataFrame(points) if points else pd.DataFrame(columns=["experiment", "method", "env", "llm", "seed",
                                                                          "status", *CURVE_METRICS])
    return run_df, curve_df


REFINE_COLUMNS = ["method", "env", "seed", "match_rate", "match_radius", "match_radius_source", "critical_states",
                  "acted_states", "identification_steps", "critical_start_share", "blind_share", "mask_steps",
                  "explanation_steps", "schedule", "pretrained_from"]


def refinement_table(runs: pd.DataFrame) -> pd.DataFrame:
    """What each refinement run acted on (ULTRA's match rate and table, StateMask/RICE's pool and
    starts), one row per run of `runs` (from `collect`), from the summaries' `ultra` and
    `explanation` parts."""
    rows = []
    for run in runs.itertuples():
        path = Path(run.run_dir) / SUMMARY_FILE
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        part = s.get("ultra") or s.get("explanation")
        if part is None:
            continue
        rows.append({"method": run.method, "env": run.env, "seed": run.seed,
                     **{k: part.get(k) for k in REFINE_COLUMNS[3:-2]},
                     "schedule": (s.get("schedule") or {}).get("mode"), "pretrained_from": s.get("pretrained_from")})
    return pd.DataFrame(rows, columns=REFINE_COLUMNS)


def collect_wandb(path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same tables from a W&B project ("entity/project") through W&B's public API (online).
    Runs are logged with the run's config, so method, env, llm and seed come from there."""
    import wandb

    api = wandb.Api()
    runs, points = [], []
    for run in api.runs(path):
        cfg = run.config
        record = {"experiment": cfg.get("experiment_name"), "method": (cfg.get("method") or {}).get("name"),
                  "env": (cfg.get("env") or {}).get("name"), "llm": (cfg.get("llm") or {}).get("name"),
                  "seed": cfg.get("seed"), "run_dir": run.url}
        summary = dict(run.summary)
        record["status"] = summary.get("status") or ("incomplete" if run.state != "finished" else "unknown")
        record.update({k: summary.get(k) for k in RUN_COLUMNS if k in summary and k not in record})
        runs.append(record)
        for row in run.scan_history(keys=[k for k in CURVE_METRICS if k != "wall_s"] + ["wall_s"]):
            points.append({**{k: record[k] for k in ("experiment", "method", "env", "llm", "seed", "status")},
                           **{k: row.get(k) for k in CURVE_METRICS}})
    return pd.DataFrame(runs, columns=RUN_COLUMNS), pd.DataFrame(points)
