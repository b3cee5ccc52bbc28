"""The headline of a comparison: per method, env steps to reach a target return, best and final
return, LLM calls and tokens, wall time; and where the report's table and figures are.

    python scripts/headline.py runs/quickstart --target 195 [--report results/quickstart]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.analysis.aggregate import collect  # noqa: E402
from llmrl.analysis.stats import steps_to_target  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--target", type=float, required=True, help="return to reach (CartPole: 195)")
    parser.add_argument("--report", type=Path, default=None, help="the report's directory, to point at its files")
    args = parser.parse_args(argv)
    runs, curves = collect([args.sweep])
    if runs.empty:
        print(f"error: no runs under {args.sweep}", file=sys.stderr)
        return 2
    reach = steps_to_target(curves, args.target)
    print(f"\n== {args.sweep.name}: env steps to reach a return of {args.target:g} ==")
    for r in runs.sort_values(["env", "method", "seed"]).itertuples():
        hit = reach[(reach["method"] == r.method) & (reach["env"] == r.env) & (reach["seed"] == r.seed)]
        steps = hit["steps"].iloc[0] if len(hit) else None
        reached = f"{int(steps):,} env steps" if steps is not None and steps == steps else "not reached"
        parts = [f"{r.method} on {r.env} (seed {r.seed}, {r.status})", f"target {reached}",
                 f"best return {r.best_return:.1f}" if r.best_return == r.best_return else "best return -",
                 f"final {r.final_return:.1f}" if r.final_return == r.final_return else "final -",
                 f"{int(r.total_env_steps or 0):,} env steps in all"]
        if r.llm not in (None, "none") and r.llm_calls == r.llm_calls:
            parts.append(f"{int(r.llm_calls)} LLM calls ({r.llm}), {int(r.llm_tokens or 0):,} tokens")
        if r.wall_s == r.wall_s and r.wall_s is not None:
            parts.append(f"{r.wall_s / 60:.1f} min")
        print("  " + " | ".join(parts))
    if args.report is not None:
        figures = sorted((args.report / "figures").glob("*.png"))
        print(f"  report: {args.report / 'REPORT.md'}" + (f"   curves: {', '.join(str(f) for f in figures[:3])}" if figures else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
