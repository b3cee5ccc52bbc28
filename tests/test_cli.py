"""The runner as a user drives it: `python run.py ...` in a subprocess."""
from __future__ import annotations

import json
import signal
import time

import pytest

from llmrl.tracking import read_curve
from tests.conftest import popen_cli, run_cli

QUICK = ["method=ppo", "method.total_steps=6000", "method.eval_every=2000", "env.eval_episodes=3", "logger.progress=false"]


def test_short_ppo_run_writes_curve_summary_and_config(run_dir):
    run_cli("env=cartpole", "method=ppo", f"hydra.run.dir={run_dir}", *QUICK, check=True)
    curve = read_curve(run_dir)
    steps = [p["env_steps"] for p in curve]
    assert steps[0] == 0 and all(b > a for a, b in zip(steps, steps[1:]))
    assert {2000, 4000, 6000} <= set(steps)
    assert all(p["eval_episodes"] == 3 for p in curve)
    assert all(p["llm_calls"] is None for p in curve)  # RL baselines leave the LLM columns empty
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done"
    assert summary["total_env_steps"] == steps[-1] >= 6000
    assert summary["final_return"] == curve[-1]["return_mean"]
    assert summary["best_return"] == max(p["return_mean"] for p in curve)
    config = (run_dir / "config.yaml").read_text()
    assert "total_steps: 6000" in config and "gym_id: CartPole-v1" in config


def test_same_seed_same_curve(tmp_path):
    curves = []
    for i in range(2):
        d = tmp_path / f"r{i}"
        run_cli("env=cartpole", "seed=7", f"hydra.run.dir={d}", *QUICK, check=True)
        curves.append([(p["env_steps"], p["return_mean"], p["return_std"]) for p in read_curve(d)])
    assert curves[0] == curves[1]


def test_sac_short_run_on_pendulum(run_dir):
    run_cli(
        "env=pendulum", "method=sac", f"hydra.run.dir={run_dir}", "method.total_steps=600", "method.eval_every=300",
        "env.eval_episodes=1", "+method.hparams.learning_starts=100", "logger.progress=false", check=True,
    )
    steps = [p["env_steps"] for p in read_curve(run_dir)]
    assert steps == [0, 300, 600]
    assert (run_dir / "checkpoint" / "replay_buffer.pkl").is_file()


def test_resume_after_kill_yields_one_clean_curve(run_dir):
    args = ["env=cartpole", "method=ppo", f"hydra.run.dir={run_dir}", "method.total_steps=30000", "method.eval_every=3000",
            "env.eval_episodes=2", "logger=wandb", "logger.mode=offline", "logger.progress=false"]
    proc = popen_cli(*args)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(read_curve(run_dir)) < 4:
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            time.sleep(0.2)
        assert len(read_curve(run_dir)) >= 4
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = read_curve(run_dir)[-1]["env_steps"]
    assert killed_at < 30000 and not (run_dir / "summary.json").exists()
    run_id = (run_dir / "wandb_run_id.txt").read_text()

    run_cli(*args, "resume=true", check=True)
    steps = [p["env_steps"] for p in read_curve(run_dir)]
    assert all(b > a for a, b in zip(steps, steps[1:])), steps  # no duplicates, in order
    assert set(range(0, 30001, 3000)) <= set(steps)  # no missing evaluation point
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["n_points"] == len(steps)
    # the resumed run continues the same W&B run
    assert (run_dir / "wandb_run_id.txt").read_text() == run_id
    offline = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 2 and {f.name for f in offline} == {f"run-{run_id}.wandb"}

    again = run_cli(*args, "resume=true", check=True)  # a finished run is left as it is
    assert [p["env_steps"] for p in read_curve(run_dir)] == steps
    assert "already complete" in again.stderr + again.stdout


def test_existing_run_is_not_overwritten(run_dir):
    run_cli("env=cartpole", f"hydra.run.dir={run_dir}", *QUICK, check=True)
    before = (run_dir / "curve.csv").read_text()
    proc = run_cli("env=cartpole", f"hydra.run.dir={run_dir}", *QUICK)
    assert proc.returncode != 0
    assert "resume=true" in proc.stderr
    assert (run_dir / "curve.csv").read_text() == before


# ---- bad input: non-zero exit, a message that names the fix ----------------------------------
def _last_line(text: str) -> str:
    return [ln for ln in text.strip().splitlines() if ln.strip()][-1]


def test_unknown_env_lists_valid_options(run_dir):
    proc = run_cli("env=cartpol", f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    assert "Could not find 'env/cartpol'" in proc.stderr
    assert "cartpole" in proc.stderr and "mujoco_hopper" in proc.stderr  # Hydra's list of valid envs


def test_unknown_method_lists_valid_options(run_dir):
    proc = run_cli("method=ppo2", f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    assert "Could not find 'method/ppo2'" in proc.stderr and "sac" in proc.stderr


@pytest.mark.parametrize(
    "override, needle",
    [("method.total_steps=-5", "method.total_steps=-5"), ("method.eval_every=0", "method.eval_every=0"),
     ("seed=-1", "seed=-1"), ("env.eval_episodes=0", "env.eval_episodes=0")],
)
def test_bad_values_exit_with_one_line(run_dir, override, needle):
    proc = run_cli("env=cartpole", "method=ppo", override, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "curve.csv").exists()


def test_typo_in_key_is_named(run_dir):
    proc = run_cli("method=ppo", "method.totl_steps=5", f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    assert "totl_steps" in proc.stderr and "Traceback" not in proc.stderr


def test_sac_on_discrete_env_is_a_clear_error(run_dir):
    proc = run_cli("env=cartpole", "method=sac", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2
    line = _last_line(proc.stderr)
    assert line.startswith("error:") and "continuous" in line and "method=ppo" in line


def test_help_and_cfg_work():
    helped = run_cli("--help")
    assert helped.returncode == 0 and "env:" in helped.stdout and "mujoco_hopper" in helped.stdout
    cfg = run_cli("--cfg", "job", "env=mujoco_hopper", "method=sac")
    assert cfg.returncode == 0 and "gym_id: Hopper-v5" in cfg.stdout and "algo: sac" in cfg.stdout


@pytest.mark.parametrize("env", ["atari_pong", "metaworld_reach", "point_maze_large", "mujoco_hopper", "noise_world_board_4"])
def test_short_ppo_run_per_env_family(tmp_path, env):
    """One tiny PPO run per family: CNN policy on frames, Meta-World, dict observations
    flattened, normalised MuJoCo, our own grid world."""
    d = tmp_path / env
    run_cli(f"env={env}", "method=ppo", f"hydra.run.dir={d}", "method.total_steps=1024", "method.eval_every=512",
            "env.eval_episodes=1", "+method.hparams.n_steps=128", "logger.progress=false", check=True)
    assert [p["env_steps"] for p in read_curve(d)] == [0, 512, 1024]
