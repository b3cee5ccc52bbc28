#!/usr/bin/env bash
# The small real-world comparison (issue: traffic merging on SUMO and pandemic response), as run on a 2-core machine:
# PPO at half its tuned budget (conf/hparams/ppo.yaml: 200k env steps; 100k here, for time) and PromptPO with the embedded local model
# (2 rounds x 4 candidates x 5 episodes, as `make run`), 1 seed each; then the reference's published policies and two
# trivial policies evaluated on the same held-out seeds (5 episodes each).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
for env in pandemic traffic_merge; do
  $PY run.py env=$env method=ppo seed=0 method.total_steps=100000 logger.progress=false hydra.run.dir=runs/realworld/ppo/$env/s0
done
for env in pandemic traffic_merge; do
  $PY run.py env=$env method=promptpo llm=local seed=0 method.rounds=2 method.n_candidates=4 \
      method.episodes_per_candidate=5 method.max_repairs=1 logger.progress=false \
      hydra.run.dir=runs/realworld/promptpo_local/$env/s0
done
# the reference's published policies (Stephanehk/PromptPO representitive_policies/{traffic,pandemic}/, not in this
# repository: put them in $PUBLISHED) and two trivial policies
PUBLISHED=${PUBLISHED:-/tmp/pubpol}
for f in "$PUBLISHED"/pandemic_*.py; do $PY scripts/evaluate_policy.py "$f" env=pandemic +interface=reference +episodes=5; done
for f in "$PUBLISHED"/traffic_*.py; do $PY scripts/evaluate_policy.py "$f" env=traffic_merge +interface=reference +episodes=5; done
$PY scripts/evaluate_policy.py examples/realworld/keep_stage.py env=pandemic +episodes=5
$PY scripts/evaluate_policy.py examples/realworld/zero_accel.py env=traffic_merge +episodes=5
$PY scripts/report.py runs/realworld --out results/realworld --title "Real-world tasks: traffic merging and pandemic, small" \
    --notes-file results/realworld/NOTES.md
