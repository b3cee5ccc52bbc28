"""Print the sample-efficiency curve and summary of one or more run directories.

    python scripts/curve.py runs/default/cartpole/ppo/none/seed_0 [more run dirs ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmrl.tracking import CURVE_FILE, SUMMARY_FILE  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    status = 0
    for run_dir in args.run_dirs:
        curve = run_dir / CURVE_FILE
        if not curve.exists():
            print(f"{run_dir}: no {CURVE_FILE} (not a run directory, or the run has not reported yet)", file=sys.stderr)
            status = 1
            continue
        frame = pd.read_csv(curve).dropna(axis=1, how="all")
        summary_path = run_dir / SUMMARY_FILE
        state = json.loads(summary_path.read_text())["status"] if summary_path.exists() else "running or killed (no summary)"
        print(f"== {run_dir}  [{state}]")
        print(frame.to_string(index=False))
    return status


if __name__ == "__main__":
    sys.exit(main())
