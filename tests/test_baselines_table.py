"""results/BASELINES.md from a sweep: the zoo's evaluation of each final agent, statistics over
seeds beside the published number, the archive it is rebuilt from, and the W&B tables."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import yaml

from tests.conftest import REPO, run_cli
from tests.test_wandb import WANDB, inspect

SCRIPT = REPO / "scripts" / "baselines_table.py"


def table_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_baselines_table_from_a_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("-m", "env=cartpole", "method=ppo", "seed=0,1,2,3,4", "experiment_name=bl_test", "method.total_steps=512",
            "method.eval_every=512", "env.eval_episodes=1", "logger.progress=false", f"hydra.sweep.dir={sweep}",
            check=True)
    archive, out = tmp_path / "archive", tmp_path / "BASELINES.md"
    proc = table_cli(str(sweep), "--archive", str(archive), "--out", str(out), "--eval-steps", "3000",
                     "--reps", "500", "--wandb", "--wandb-dir", str(tmp_path / "wb"))
    assert proc.returncode == 0, proc.stderr

    # the zoo's protocol: every started episode finished, episodes until the step count is reached
    evals = {int(p.parent.name.split("_")[1]): json.loads(p.read_text()) for p in sweep.rglob("zoo_eval.json")}
    assert sorted(evals) == list(range(5))
    for ev in evals.values():
        assert 3000 <= ev["steps"] < 3000 + 16 * 500 and ev["episodes"] == len(ev["returns"])
        assert ev["deterministic"] and abs(np.mean(ev["returns"]) - ev["mean"]) < 1e-3
    # statistics over the five seeds, beside the zoo's 500 at 100k steps; a 512-step PPO is far below it
    table = pd.read_csv(out.with_suffix(".csv"))
    row = table.iloc[0]
    assert (row["gym_id"], row["algo"], row["seeds"], row["budget"]) == ("CartPole-v1", "ppo", 5, 512)
    assert abs(row["mean"] - np.mean([ev["mean"] for ev in evals.values()])) < 1e-6
    assert row["mean_low"] <= row["mean"] <= row["mean_high"] and row["zoo_mean"] == 500.0
    assert not row["zoo_inside_ci"]
    assert row["diagnosis"].startswith("NOT YET EXPLAINED") and "budget 512 vs the zoo's 100,000" in row["diagnosis"]
    assert "warning: ppo cartpole" in proc.stderr
    text = out.read_text()
    assert "| CartPole-v1 | PPO+eval_episodes=1-" in text and "| 512 | 5 |" in text and "**no**" in text
    assert "python run.py -m experiment=bl_test method=ppo env=cartpole seed=0,1,2,3,4" in text

    # the archive holds no checkpoint and rebuilds the same table; a written diagnosis replaces the warning
    assert not list(archive.rglob("model.zip")) and len(list(archive.rglob("zoo_eval.json"))) == 5
    shutil.rmtree(sweep)
    diagnosis = tmp_path / "diagnosis.yaml"
    diagnosis.write_text(yaml.safe_dump({"ppo": {"cartpole": "A 512-step smoke budget, not the zoo's."}}))
    again = table_cli("--archive", str(archive), "--out", str(tmp_path / "again.md"), "--eval-steps", "3000",
                      "--reps", "500", "--diagnosis", str(diagnosis))
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr
    rebuilt = (tmp_path / "again.md").read_text()
    assert rebuilt.split("| env | algo")[1].split("## Per seed")[0] == text.split("| env | algo")[1].split("## Per seed")[0]
    assert "A 512-step smoke budget, not the zoo's." in rebuilt

    # W&B: one offline run per (env, algo), grouped by env, job_type = algo, holding both tables
    files = list((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    records = [json.loads(line) for line in inspect(files[0]).splitlines() if line.strip()]
    run = next(r["run"] for r in records if r.get("type") == "run")
    assert run["run_group"] == "bl_test/cartpole" and run["job_type"] == "ppo"
    item = next(r["history"]["item"] for r in records if r.get("type") == "history")
    assert item["baselines_vs_zoo._type"] == "table-file" and item["per_seed._type"] == "table-file"
    assert (item["baselines_vs_zoo.nrows"], item["per_seed.nrows"]) == (1, 5)
    saved = json.loads((files[0].parent / "files" / item["per_seed.path"]).read_text())
    assert [round(r[1], 6) for r in saved["data"]] == [round(evals[s]["mean"], 6) for s in range(5)]
    summary = json.loads(inspect(files[0], "--summary"))
    assert summary["summary"]["zoo_inside_ci"] is False and WANDB.exists()
