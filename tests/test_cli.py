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
    assert summary["best_return"] == max(p["return_mean"] for p in curve if p["env_steps"] > 0)  # not the untrained policy
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


def _columns_but_wall(run_dir) -> list[str]:
    """curve.csv as text without its wall_s column: what must be identical byte for byte."""
    lines = (run_dir / "curve.csv").read_text().splitlines()
    wall = lines[0].split(",").index("wall_s")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != wall) for line in lines]


def _kill_after(args, run_dir, points: int) -> None:
    proc = popen_cli(*args)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(read_curve(run_dir)) < points:
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sac_killed_and_resumed_gives_the_uninterrupted_curve(tmp_path):
    args = ["env=pendulum", "method=sac", "method.total_steps=1500", "method.eval_every=300", "env.eval_episodes=1",
            "+method.hparams.learning_starts=100", "logger.progress=false"]
    run_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}", check=True)
    killed = tmp_path / "killed"
    _kill_after([*args, f"hydra.run.dir={killed}"], killed, 3)
    assert not (killed / "summary.json").exists()
    run_cli(*args, f"hydra.run.dir={killed}", "resume=true", check=True)
    assert _columns_but_wall(killed) == _columns_but_wall(tmp_path / "whole")


def test_resume_after_kill_yields_one_clean_curve(run_dir, tmp_path):
    """...and exactly the curve of the same run left uninterrupted (the same values, written the same way)."""
    args = ["env=cartpole", "method=ppo", f"hydra.run.dir={run_dir}", "method.total_steps=30000", "method.eval_every=3000",
            "env.eval_episodes=2", "logger=wandb", "logger.mode=offline", "logger.progress=false"]
    proc = popen_cli(*args)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(read_curve(run_dir)) < 4:
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            time.sleep(0.2)
        assert len(read_curve(run_dir)) >= 4
        proc.send_signal(signal.SIGSTOP)  # still holding its run directory: a second process must not resume it too
        second = run_cli(*args, "resume=true")
        assert second.returncode == 2 and f"is in use by another process (pid {proc.pid}" in second.stderr, second.stderr[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = read_curve(run_dir)[-1]["env_steps"]
    assert killed_at < 30000 and not (run_dir / "summary.json").exists()
    # the kernel dropped the killed process's hold on the directory: resuming needs nothing cleaned up
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
    # read with W&B's own reader: the second part starts after the first ends, so syncing both (in order)
    # gives one history in which every curve point appears once and none is missing
    from tests.test_wandb import history

    first, second = (history(f) for f in offline)
    assert first and second and min(h["_step"] for h in second) > max(h["_step"] for h in first)
    assert not (run_dir / "wandb_state.json").exists()
    logged = [h["env_steps"] for h in first + second if "return_mean" in h]
    assert logged == steps

    again = run_cli(*args, "resume=true", check=True)  # a finished run is left as it is
    assert [p["env_steps"] for p in read_curve(run_dir)] == steps
    assert "already complete" in again.stderr + again.stdout
    whole = tmp_path / "whole"
    run_cli(*[a.replace(str(run_dir), str(whole)) for a in args], check=True)
    assert _columns_but_wall(run_dir) == _columns_but_wall(whole)


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


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:"), proc.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("args, needles", [
    (["env=cartpol"], ["env=cartpol: there is no such env (did you mean env=cartpole?)", "mujoco_hopper"]),
    (["method=ppo2"], ["there is no such method (did you mean method=ppo?)", "sac", "ultra_ra"]),
    (["-m", "method=ppo", "env=cartpole,acrobott"], ["env=acrobott: there is no such env"]),  # every swept value
    (["method=ppo", "method.totl_steps=5"], ["method.totl_steps: no such key under method", "did you mean method.total_steps?",
                                               "+method.totl_steps=5"]),
    (["method=ppo", "+method.hparams.learning_rat=0.1"], ["did you mean method.hparams.learning_rate?"]),
    (["method=promptpo", "sandbox.backend=docker"], ["sandbox.backend='docker': choose auto, bwrap or process"]),
    (["method=ppo", "method.device=tpu"], ["method.device='tpu': choose cpu, cuda"]),
    (["env=cartpole,"], ["cannot read the overrides"]),
])
def test_bad_input_is_one_line_before_any_work(run_dir, args, needles):
    proc = run_cli(*args, f"hydra.run.dir={run_dir}", "logger.progress=false")
    line = _one_error_line(proc)
    assert all(n in line for n in needles), line
    assert not run_dir.exists() or not list(run_dir.iterdir()) or not (run_dir / "curve.csv").exists()


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


def test_sac_on_discrete_env_is_a_clear_error(run_dir):
    proc = run_cli("env=cartpole", "method=sac", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2
    line = _last_line(proc.stderr)
    assert line.startswith("error:") and "continuous" in line and "method=ppo" in line


def test_help_and_cfg_work():
    helped = run_cli("--help")
    assert helped.returncode == 0 and "env:" in helped.stdout and "mujoco_hopper" in helped.stdout
    assert "hydra/launcher: local, slurm" in helped.stdout and "method: " in helped.stdout
    assert "_defaults" not in helped.stdout and "_ultra_base" not in helped.stdout  # shared parts, not choices
    assert not any(line.strip().startswith(("hparams:", "analysis:")) for line in helped.stdout.splitlines())  # data
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


def test_a_hyperparameter_sweep_gets_a_run_per_value(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "env=cartpole", "method=ppo", "seed=0", "method.total_steps=2000", "method.eval_every=1000",
                   "+method.hparams.learning_rate=0.001,0.0003", "logger.progress=false", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = sorted(p.parent for p in sweep.rglob("summary.json"))
    assert [d.relative_to(sweep).parts[1] for d in dirs] == ["ppo+learning_rate=0.0003-3fe281", "ppo+learning_rate=0.001-c184e9"]
    curves = [[p["return_mean"] for p in read_curve(d)] for d in dirs]
    assert curves[0][1:] != curves[1][1:]  # two trainings, not one result recorded twice
    lrs = [json.loads((d / "summary.json").read_text())["hparams"]["learning_rate"] for d in dirs]
    assert lrs == [0.0003, 0.001]


def test_resume_with_another_config_is_refused_with_a_one_line_diff(run_dir):
    args = ["env=cartpole", "method=ppo", f"hydra.run.dir={run_dir}", "method.total_steps=2000", "method.eval_every=1000",
            "env.eval_episodes=2", "logger.progress=false"]
    run_cli(*args, check=True)
    before = (run_dir / "curve.csv").read_text()
    proc = run_cli(*args, "resume=true", "+method.hparams.learning_rate=0.01", "env.eval_episodes=3")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "env.eval_episodes: 2 there, 3 here" in errors[0] and "method.hparams.learning_rate: <absent> there, 0.01 here" in errors[0]
    assert "resume_allow_changes=[env.eval_episodes,method.hparams.learning_rate]" in errors[0]
    assert (run_dir / "curve.csv").read_text() == before and "eval_episodes: 2" in (run_dir / "config.yaml").read_text()
    # a finished run extended on purpose: the change is allowed, made and recorded
    longer = [a.replace("total_steps=2000", "total_steps=4000") for a in args]
    run_cli(*longer, "resume=true", "resume_allow_changes=[method.total_steps]", check=True)
    steps = [p["env_steps"] for p in read_curve(run_dir)]
    assert steps[-1] >= 4000 and (run_dir / "curve.csv").read_text().startswith(before)  # earlier points kept as written
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config_changes"][0]["changes"] == [{"key": "method.total_steps", "from": 2000, "to": 4000}]
    # a hyperparameter allowed to change takes its new value in the resumed model (not the saved schedule's)
    from stable_baselines3 import PPO

    longer = [a.replace("total_steps=4000", "total_steps=5000") for a in longer]
    run_cli(*longer, "resume=true", "+method.hparams.learning_rate=0.01",
            "resume_allow_changes=[method.total_steps,method.hparams.learning_rate]", check=True)
    model = PPO.load(str(run_dir / "checkpoint" / "model.zip"), device="cpu")
    assert model.learning_rate == 0.01 and model.lr_schedule(1.0) == 0.01
    assert len(json.loads((run_dir / "summary.json").read_text())["config_changes"]) == 2


def test_a_run_that_failed_before_its_first_point_does_not_block_the_corrected_command(run_dir):
    args = ["env=cartpole", "method=ppo", f"hydra.run.dir={run_dir}", "method.total_steps=1000", "method.eval_every=500",
            "env.eval_episodes=1", "logger.progress=false"]
    failed = run_cli(*args, "+method.hparams.batch_size=1")  # SB3 refuses it when the model is built
    assert failed.returncode != 0 and json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    run_cli(*args, check=True)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"
