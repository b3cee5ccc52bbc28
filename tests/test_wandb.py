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


def history(path: Path) -> list[dict]:
    records = [json.loads(line) for line in inspect(path).splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


def test_offline_wandb_run_matches_local_curve(run_dir):
    proc = run_cli(
        "env=cartpole", "method=ppo", "logger=wandb", "logger.mode=offline", f"hydra.run.dir={run_dir}", "seed=3",
        "method.total_steps=4000", "method.eval_every=1000", "env.eval_episodes=2", "logger.progress=false",
        check=True,
    )
    assert f"wandb sync {run_dir}/wandb/offline-run-*" in proc.stderr  # the one command that uploads it
    files = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    run_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    assert files[0].name == f"run-{run_id}.wandb"

    records = [json.loads(line) for line in inspect(files[0]).splitlines() if line.strip()]
    rows = [r["history"]["item"] for r in records if r.get("type") == "history"]
    local = read_curve(run_dir)
    points = [h for h in rows if "return_mean" in h]  # curve points; SB3's training signals share some rows
    assert [h["env_steps"] for h in points] == [p["env_steps"] for p in local]
    assert [h["return_mean"] for h in points] == [p["return_mean"] for p in local]
    assert [h["return_std"] for h in points] == [p["return_std"] for p in local]
    assert all(h["_step"] == h["env_steps"] for h in rows)  # W&B's own step is env_steps
    # SB3's own training signals, against env_steps, in W&B and in the run directory
    trained = [h for h in rows if "train/approx_kl" in h]
    assert trained and all(0 < h["env_steps"] <= 4096 for h in trained) and "train/entropy_loss" in trained[-1]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {x["env_steps"] for x in lines if "train/approx_kl" in x} == {h["env_steps"] for h in trained}

    summary = json.loads(inspect(files[0], "--summary"))
    assert summary["state"] == "finished"
    assert summary["run_id"] == run_id
    assert summary["config"]["env"]["name"] == "cartpole"
    # the effective hyperparameters (zoo table + overrides) are in the run's config from its start
    assert summary["config"]["effective"]["hparams"]["n_envs"] == 8 and summary["config"]["effective"]["total_steps"] == 4000
    assert summary["summary"]["final_return"] == local[-1]["return_mean"]
    # grouping and tags as DESIGN §3: group = experiment/env, tags = method, llm, seed
    run_record = next(r["run"] for r in records if r.get("type") == "run")
    assert run_record["run_group"] == "default/cartpole"
    assert set(run_record.get("tags", [])) >= {"ppo", "none", "seed_3"}
    label = run_record["display_name"]  # <method>[+variant]-<env>-s<seed>; the overrides here make a variant
    assert label.startswith("ppo+eval_episodes=2-") and label.endswith("-cartpole-s3")
    # the trained model behind the curve, as a W&B artifact of the run
    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact"]
    assert artifacts and artifacts[0]["type"] == "model" and artifacts[0]["name"].startswith(label.replace("=", "_").replace("+", "_"))
