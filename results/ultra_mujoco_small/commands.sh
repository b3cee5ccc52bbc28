#!/usr/bin/env bash
# The small real run of every refinement method on Hopper (issue: ULTRA vs RICE/StateMask-R) and the
# coverage comparison, as run on a 2-core machine with the embedded model (llm=local).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
# 1. all ten methods, one shared sub-optimal agent (50k PPO steps), 50k refinement steps each
$PY run.py -m experiment=ultra_mujoco_small logger.progress=false
# 2. are the LLM's critical states critical? the ULTRA-RA run's agent, coverage sampled (the run's: one 20-step
#    window per episode, the end) and tiled (the whole episode, every k-th step, in the same ~1500 tokens)
RA=runs/ultra_mujoco_small/mujoco_hopper/ultra_ra/local/seed_0
$PY scripts/critical_state_fidelity.py $RA --episodes 3 --mask-steps 10000 --out results/fidelity/hopper_small_sampled
# (not completed on this machine: the tiled prompt timed out)
$PY scripts/critical_state_fidelity.py $RA --episodes 3 --sources llm --set method.coverage=tiled \
    --out results/fidelity/hopper_small_tiled
# 3. the report
$PY scripts/report.py runs/ultra_mujoco_small --out results/ultra_mujoco_small --title "ULTRA vs StateMask-R and RICE, Hopper, small" \
    --fidelity results/fidelity/hopper_small_sampled/fidelity.json --reps 500
