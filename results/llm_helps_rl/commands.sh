#!/usr/bin/env bash
# The small version of the llm_helps_rl comparison (issue: when the LLM helps RL), as run on a 2-core machine:
# RL from scratch against RL started from a guide policy, on one env-step axis, guide steps included.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
# 1. hand-written guides (examples/guides/): the analytic CartPole controller (5 seeds), a Hopper posture
#    controller (1 seed: the mechanics); PPO from scratch and jump-start / behaviour cloning / residual PPO, 100k steps each
$PY run.py -m experiment=llm_helps_rl_small env=cartpole seed=0,1,2,3,4 logger.progress=false
$PY run.py -m experiment=llm_helps_rl_small env=mujoco_hopper method=ppo,promptpo_jsrl,promptpo_bc seed=0 logger.progress=false
#    the residual on Hopper ran out of time at 100k beside the other runs: 30k steps (its own directory)
$PY run.py env=mujoco_hopper method=promptpo_residual llm=none seed=0 experiment_name=llm_helps_rl_small \
    method.guide_policy=$PWD/examples/guides/hopper_posture.py method.total_steps=30000 method.eval_every=10000 \
    logger.progress=false hydra.run.dir=runs/llm_helps_rl_small/mujoco_hopper/promptpo_residual_30k/none/seed_0
# 2. the embedded model's PromptPO guide on CartPole, written in the run (2 rounds x 4 candidates, as make run),
#    then jump-start PPO or behaviour cloning + PPO, 100k steps in all; the two hybrids of a seed share the rounds
$PY run.py -m experiment=llm_helps_rl_local method=promptpo_jsrl seed=0,1,2 logger.progress=false
$PY run.py -m experiment=llm_helps_rl_local method=promptpo_bc seed=0,1,2 logger.progress=false
# 3. the report (PPO's final score per env is the target for "env steps to reach")
$PY scripts/report.py runs/llm_helps_rl_small runs/llm_helps_rl_local --out results/llm_helps_rl \
    --title "When the LLM helps RL: RL from a guide policy, small" --notes-file results/llm_helps_rl/NOTES.md
