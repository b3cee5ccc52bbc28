"""Write results/<sweep>/REPORT.md (tables, figures, rliable statistics) from run directories.

    python scripts/report.py runs/my_sweep [--out results/my_sweep] [--title "..."] [--notes-file notes.md]
    python scripts/report.py --random-scores cartpole acrobot pendulum   # measure and store random-policy scores
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.analysis.report import build, load_random_scores, random_policy_score  # noqa: E402

RANDOM_SCORES = REPO / "conf" / "analysis" / "random_scores.yaml"


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
    report = build(args.roots, args.out, load_random_scores(RANDOM_SCORES), args.baseline, args.title, notes, args.reps,
                   args.log_x)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
