"""The W&B offline run, read back with W&B's own CLI, holds the same points as curve.csv."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llmrl.tracking import read_curve
from tests.conftest import run_cli

WANDB = Path(sys.executable).parent / "wandb"


def inspect(path: Path, *flags: str) -> str:
    proc = subprocess.run([str(WANDB), "leet", "inspect", *flags, "--json", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_offline_wandb_run_matches_local_curve(run_dir):
    run_cli(
        "env=cartpole", "method=ppo", "logger=wandb", "logger.mode=offline", f"hydra.run.dir={run_dir}", "seed=3",
        "method.total_steps=4000", "method.eval_every=1000", "env.eval_episodes=2", "logger.progress=false",
        check=True,
    )
    files = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    assert files[0].name == f"run-{run_id}.wandb"

    records = [json.loads(line) for line in inspect(files[0]).splitlines() if line.strip()]
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    local = read_curve(run_dir)
    assert [h["env_steps"] for h in history] == [p["env_steps"] for p in local]
    assert [h["return_mean"] for h in history] == [p["return_mean"] for p in local]
    assert [h["return_std"] for h in history] == [p["return_std"] for p in local]

    summary = json.loads(inspect(files[0], "--summary"))
    assert summary["state"] == "finished"
    assert summary["run_id"] == run_id
    assert summary["config"]["env"]["name"] == "cartpole"
    assert summary["summary"]["final_return"] == local[-1]["return_mean"]
    # grouping and tags as DESIGN §3: group = experiment/env, tags = method, llm, seed
    run_record = next(r["run"] for r in records if r.get("type") == "run")
    assert run_record["run_group"] == "default/cartpole"
    assert set(run_record.get("tags", [])) >= {"ppo", "none", "seed_3"}
