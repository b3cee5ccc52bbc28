"""How good is the embedded model at PromptPO? Per seed, after R rounds: the held-out return of the
best policy so far (PromptPO's curve), the valid-code rate (runnable after repairs), the first-attempt
rate, repairs, LLM calls and tokens, wall time; then the mean over seeds with a 95% bootstrap CI.
It reads finished runs; the commands that make them are in benchmarks/README.md, e.g.

    Q="method=promptpo env=cartpole experiment_name=promptpo_local_cartpole method.n_candidates=4 \\
       method.episodes_per_candidate=5 method.max_repairs=1"
    python run.py -m $Q seed=0,1,2,3,4 method.rounds=2
    python run.py -m $Q seed=0,1,2,3,4 method.rounds=5 resume=true "resume_allow_changes=[method.rounds]"
    .venv/bin/python benchmarks/promptpo_local.py runs/promptpo_local_cartpole --rounds 2 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.analysis.aggregate import find_run_dirs  # noqa: E402
from llmrl.analysis.stats import interval_estimates  # noqa: E402
from llmrl.tracking import read_curve  # noqa: E402


def per_seed(run_dir: Path, rounds: int) -> dict | None:
    curve = [p for p in read_curve(run_dir) if p.get("round") is not None and int(p["round"]) <= rounds]
    if len(curve) < rounds:
        return None  # not that far yet
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()][:rounds]
    seed = int(yaml.safe_load((run_dir / "config.yaml").read_text())["seed"])
    last = curve[-1]
    return {"seed": seed, "best_return": float(last["return_mean"]),
            "valid_code_rate": float(np.mean([m["promptpo/valid_code_rate"] for m in metrics])),
            "first_attempt_ok": float(np.mean([m["promptpo/first_attempt_ok_rate"] for m in metrics])),
            "repairs": int(sum(m["promptpo/repairs"] for m in metrics)), "llm_calls": int(last["llm_calls"]),
            "llm_tokens": int(last["llm_tokens"]), "env_steps": int(last["env_steps"]), "wall_min": float(last["wall_s"]) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, nargs="+", default=[3, 5])
    args = parser.parse_args()
    for sweep in args.sweeps:
        dirs = [d for d in find_run_dirs([sweep]) if (d / "metrics.jsonl").is_file()]
        for rounds in args.rounds:
            rows = sorted(filter(None, (per_seed(d, rounds) for d in dirs)), key=lambda r: r["seed"])
            if not rows:
                continue
            print(f"\n{sweep} after {rounds} rounds ({len(rows)} seeds)\n")
            print("| seed | best return (held-out) | valid code | first attempt ok | repairs | LLM calls | tokens | env steps | wall (min) |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                print(f"| {r['seed']} | {r['best_return']:.1f} | {r['valid_code_rate']:.0%} | {r['first_attempt_ok']:.0%} | "
                      f"{r['repairs']} | {r['llm_calls']} | {r['llm_tokens']:,} | {r['env_steps']:,} | {r['wall_min']:.1f} |")
            est = interval_estimates({"x": np.array([[r["best_return"]] for r in rows])}, reps=2000).iloc[0]
            print(f"\nmean best return {est['mean']:.1f} [{est['mean_low']:.1f}, {est['mean_high']:.1f}] ({est['interval']}); "
                  f"IQM {est['iqm']:.1f}; valid code {np.mean([r['valid_code_rate'] for r in rows]):.0%}; "
                  f"repairs {np.mean([r['repairs'] for r in rows]):.1f} per run; "
                  f"seeds at >= 195: {sum(r['best_return'] >= 195 for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
