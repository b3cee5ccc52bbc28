"""Write results/BASELINES.md: our PPO/SAC runs against rl-baselines3-zoo's published numbers.

    python scripts/baselines_table.py runs/baselines_zoo            # evaluate new runs, archive them, write the table
    python scripts/baselines_table.py                                # rebuild from the archived runs (make report)
    python scripts/baselines_table.py runs/baselines_zoo --wandb     # also log the tables to W&B (offline by default)

A finished run's final agent is evaluated the zoo's way once (cached in the run's zoo_eval.json);
its small files (config, summary, curve, that evaluation) are copied under results/baselines_zoo/archive/
so the table can be rebuilt on a machine without the checkpoints.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.analysis import baselines  # noqa: E402
from llmrl.analysis.aggregate import find_run_dirs  # noqa: E402

ARCHIVE = REPO / "results" / "baselines_zoo" / "archive"  # not "runs": .gitignore keeps every runs/ out


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", nargs="?", type=Path, default=None,
                   help="a sweep directory of run.py (default: the archived runs in results/baselines_zoo/archive)")
    p.add_argument("--out", type=Path, default=REPO / "results" / "BASELINES.md")
    p.add_argument("--archive", type=Path, default=ARCHIVE, help="where the runs' small files are copied")
    p.add_argument("--published", type=Path, default=REPO / "conf" / "analysis" / "published_baselines.yaml")
    p.add_argument("--diagnosis", type=Path, default=REPO / "results" / "baselines_zoo" / "diagnosis.yaml",
                   help="YAML algo -> env -> sentence explaining a row outside the published CI")
    p.add_argument("--eval-steps", type=int, default=150_000, help="the zoo's benchmark evaluates ~150k steps")
    p.add_argument("--n-envs", type=int, default=16, help="episodes evaluated side by side (batched actions)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--wandb", action="store_true", help="log the tables to W&B: group <experiment>/<env>, job_type <algo>")
    p.add_argument("--wandb-mode", default="offline", choices=["online", "offline"])
    p.add_argument("--wandb-project", default="llmrl")
    p.add_argument("--wandb-entity", default=None)
    p.add_argument("--wandb-dir", type=Path, default=None, help="default: <sweep or archive>/wandb_tables")
    return p.parse_args(argv)


def _run_row(run_dir: Path, eval_steps: int, n_envs: int, pending: list[str]) -> dict | None:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    method = cfg.get("method") or {}
    algo = method.get("algo")
    if algo not in ("ppo", "sac"):
        return None
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if summary.get("status") != "done":
        print(f"skipped (not finished: {summary.get('status', 'running or killed')}): {run_dir}", file=sys.stderr)
        pending.append(f"{algo}-{cfg['env']['name']}-s{cfg['seed']} ({summary.get('status', 'running or killed')})")
        return None
    ev = baselines.zoo_evaluation(run_dir, eval_steps, n_envs, say=lambda m: print(m, file=sys.stderr))
    hp = summary.get("hparams") or {}
    return {"env": cfg["env"]["name"], "gym_id": cfg["env"]["gym_id"], "algo": algo, "variant": cfg.get("variant") or "", "seed": int(cfg["seed"]),
            "experiment": cfg.get("experiment_name"), "budget": int(summary.get("total_steps") or hp.get("n_timesteps")),
            "total_env_steps": summary["total_env_steps"], "wall_s": float(summary.get("wall_s") or 0.0),
            "score": ev["mean"], "episodes": ev["episodes"], "run_dir": str(run_dir),
            "label": f"{algo}{cfg.get('variant') or ''}-{cfg['env']['name']}-s{cfg['seed']}"}


def _commands(runs: pd.DataFrame) -> list[str]:
    out = []
    for (exp, algo, env), grp in runs.groupby(["experiment", "algo", "env"]):
        seeds = ",".join(str(s) for s in sorted(grp["seed"]))
        out.append(f"python run.py -m experiment={exp} method={algo} env={env} seed={seeds}")
    return out


def main(argv=None) -> int:
    args = _args(argv)
    root = args.sweep or args.archive
    if not root.is_dir():
        print(f"error: {root} is not a directory: give the sweep directory of `make sweep EXP=baselines_zoo` "
              f"(runs/baselines_zoo)", file=sys.stderr)
        return 2
    rows: list[dict] = []
    pending: list[str] = []
    for run_dir in find_run_dirs([root]):
        row = _run_row(run_dir, args.eval_steps, args.n_envs, pending)
        if row is None:
            continue
        rows.append(row)
        if args.sweep is not None and args.archive.resolve() != root.resolve():
            baselines.archive(run_dir, args.archive, root)
    if not rows:
        print(f"error: no finished PPO/SAC runs under {root}", file=sys.stderr)
        return 2
    runs = pd.DataFrame(rows)
    diagnosis = yaml.safe_load(args.diagnosis.read_text()) if args.diagnosis.is_file() else {}
    published = baselines.load_published(args.published)
    table = baselines.comparison(runs, published, diagnosis or {}, reps=args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = baselines.markdown(table, runs, _commands(runs), published.get("sources", {}), args.eval_steps, args.reps)
    if pending:
        text += "Not finished yet, so not in the tables: " + ", ".join(pending) + ".\n"
    args.out.write_text(text)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    print(f"wrote {args.out} ({len(table)} rows from {len(runs)} runs)")
    if args.wandb:
        wandb_dir = args.wandb_dir or root / "wandb_tables"
        wandb_dir.mkdir(parents=True, exist_ok=True)
        made = baselines.log_to_wandb(table, runs, str(runs["experiment"].iloc[0]), args.wandb_project,
                                      args.wandb_mode, wandb_dir, args.wandb_entity)
        print(f"W&B: {len(made)} runs in {wandb_dir}" + (f"; upload with: wandb sync {wandb_dir}/wandb/offline-run-*"
                                                           if args.wandb_mode == "offline" else ""))
    unexplained = table[table["diagnosis"].str.startswith("NOT YET EXPLAINED")]
    for r in unexplained.itertuples():
        print(f"warning: {r.algo} {r.env}: the zoo's mean is outside our CI and {args.diagnosis} has no diagnosis for it",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
