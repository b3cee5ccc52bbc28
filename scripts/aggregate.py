"""Collect runs into two tidy tables: runs.csv (one row per run, status and totals) and
curves.csv (one row per curve point). Incomplete and failed runs are listed, never dropped.

    python scripts/aggregate.py runs/my_sweep [more dirs] --out results/my_sweep
    python scripts/aggregate.py --wandb my-entity/llmrl --out results/from_wandb      # online, W&B public API
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrl.analysis.aggregate import collect, collect_wandb  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, help="directories to search for run directories")
    parser.add_argument("--wandb", help="entity/project to read through W&B's public API instead")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.roots and not args.wandb:
        parser.error("give run directories or --wandb entity/project")
    runs, curves = collect_wandb(args.wandb) if args.wandb else collect(args.roots)
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "runs.csv", index=False)
    curves.to_csv(args.out / "curves.csv", index=False)
    by_status = runs["status"].value_counts().to_dict() if len(runs) else {}
    print(f"{len(runs)} runs ({by_status}), {len(curves)} curve points -> {args.out}/runs.csv, curves.csv")
    for _, r in runs[runs["status"] != "done"].iterrows():
        print(f"  not done: {r['run_dir']}  [{r['status']}] {r['error'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
