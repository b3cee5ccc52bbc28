"""Write results/<sweep>/REPORT.md (tables, figures, rliable statistics) from run directories.

    python scripts/report.py runs/my_sweep [--out results/my_sweep] [--title "..."] [--notes-file notes.md]
    python scripts/report.py --random-scores cartpole acrobot pendulum   # measure and store random-policy scores
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.analysis.report import NoRuns, build, load_random_scores, random_policy_score  # noqa: E402

RANDOM_SCORES = REPO / "conf" / "analysis" / "random_scores.yaml"


def _fidelity_of(roots: list[Path]) -> list[Path]:
    """The fidelity measurements whose agent came from a run under one of `roots`."""
    found = []
    for path in sorted((REPO / "results" / "fidelity").glob("*/fidelity.json")):
        run_dir = Path(json.loads(path.read_text())["meta"]["run_dir"])
        if any(run_dir.is_relative_to(Path(r).resolve()) for r in roots):
            found.append(path)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=None,
                        help="where REPORT.md and its figures go (default: results/<name of the first run directory>)")
    parser.add_argument("--title", default="Results")
    parser.add_argument("--notes-file", type=Path)
    parser.add_argument("--baseline", default="ppo")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--log-x", action="store_true", help="log-scaled env steps in the curve plots")
    parser.add_argument("--fidelity", nargs="*", type=Path, default=None,
                        help="fidelity.json files of scripts/critical_state_fidelity.py (default: those under "
                             "results/fidelity/ measured on runs of these directories)")
    parser.add_argument("--random-scores", nargs="+", metavar="ENV", help="measure random-policy scores for these envs")
    args = parser.parse_args()
    if args.random_scores:
        scores = load_random_scores(RANDOM_SCORES)
        for env in args.random_scores:
            scores[env] = round(random_policy_score(env), 4)
            print(f"{env}: {scores[env]}")
        RANDOM_SCORES.parent.mkdir(parents=True, exist_ok=True)
        RANDOM_SCORES.write_text("# Mean return of a uniform random policy, 10 episodes on the eval seeds\n"
                                 "# (scripts/report.py --random-scores ENV ...). The low end of score normalisation.\n"
                                 + yaml.safe_dump(scores, sort_keys=True))
        return 0
    if not args.roots:
        parser.error("give the run directories (e.g. runs/<experiment_name>)")
    notes = args.notes_file.read_text() if args.notes_file else ""
    if args.out is None:  # one report per sweep: a second sweep's report never overwrites the first's
        args.out = REPO / "results" / Path(args.roots[0]).resolve().name
    try:
        report = build(args.roots, args.out, load_random_scores(RANDOM_SCORES), args.baseline, args.title, notes, args.reps,
                       args.log_x, fidelity=args.fidelity if args.fidelity is not None else _fidelity_of(args.roots))
    except NoRuns as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
