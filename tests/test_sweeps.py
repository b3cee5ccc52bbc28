"""Sweeps on a real one-node SLURM cluster (slurm-wlm + munge, started by the fixture on
loopback) and on the local parallel launcher; the sweep record; presets."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from llmrl.llm.scripted_server import Reply, ScriptedServer
from llmrl.sweeps import record
from llmrl.tracking import read_curve
from tests import slurm_cluster
from tests.conftest import REPO, cli_env, run_cli

POLICY = ("```python\nclass CartPolePolicy:\n    def act(self, obs):\n"
          "        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0\n```\n")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    missing = slurm_cluster.missing_tools()
    problem = (f"SLURM test cluster needs {', '.join(missing)} (make setup installs slurm-wlm and munge as root)"
               if missing else None)
    if problem is None and os.geteuid() != 0:
        problem = "the one-node SLURM test cluster runs its daemons (munged, slurmctld, slurmd) as root"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)  # CI installs and runs them: a missing piece is a failure there
        pytest.skip(problem)
    cluster = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    yield cluster
    slurm_cluster.stop(cluster)


def slurm_args(sweep_dir: Path, *extra: str) -> list[str]:
    return ["-m", "hydra/launcher=slurm", f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=20", "logger.progress=false", *extra]


def run_sweep(cluster, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**cli_env(), **cluster.env})


def test_slurm_sweep_ppo_and_promptpo_completes_four_runs(slurm, tmp_path):
    sweep_dir = tmp_path / "sweep"
    with ScriptedServer(responder=lambda request, index: Reply(content=POLICY)) as server:
        proc = run_sweep(slurm, *slurm_args(
            sweep_dir, "experiment=smoke", "method=ppo,promptpo", "env=cartpole", "seed=0,1", "llm=vllm", f"llm.api_base={server.api_base}",
            "llm.model=openai/scripted", f"llm.cache_dir={tmp_path / 'cache'}"))
    assert proc.returncode == 0, proc.stderr[-4000:] + slurm.logs()
    runs = record.read(sweep_dir)["runs"]
    assert len(runs) == 4 and {r["status"] for r in runs.values()} == {"done"}
    assert all(r["slurm_job_id"] and "_" in r["slurm_job_id"] for r in runs.values())  # one job array
    assert len({r["slurm_job_id"].split("_")[0] for r in runs.values()}) == 1
    for r in runs.values():
        curve = read_curve(Path(r["run_dir"]))
        summary = json.loads((Path(r["run_dir"]) / "summary.json").read_text())
        assert summary["status"] == "done" and len(curve) >= 2
        assert Path(r["run_dir"]).is_absolute() and str(Path(r["run_dir"])).startswith(str(sweep_dir))
    methods = sorted(json.loads((Path(r["run_dir"]) / "summary.json").read_text())["method"] for r in runs.values())
    assert methods == ["ppo", "ppo", "promptpo", "promptpo"]


def _wait_for(cond, timeout: float, what: str, cluster=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f"\njobs: {cluster.jobs()}" if cluster else ""))


def _checkpoint_steps(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "checkpoint" / "state.json").read_text())["env_steps"])
    except (OSError, ValueError, KeyError):
        return -1


def _popen_sweep(cluster, *args: str) -> subprocess.Popen:
    import sys

    return subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**cli_env(), **cluster.env})


LONG_PPO = ("method=ppo", "env=cartpole", "seed=0", "method.total_steps=60000", "method.eval_every=4096", "env.eval_episodes=2",
            "logger=wandb", "logger.mode=offline")


@pytest.mark.parametrize("how", ["scontrol requeue", "USR2 before the time limit"])
def test_interrupted_job_is_requeued_and_finishes_with_one_clean_curve(slurm, tmp_path, how):
    sweep_dir = tmp_path / "sweep"
    proc = _popen_sweep(slurm, *slurm_args(sweep_dir, *LONG_PPO))
    try:
        run_dir = _wait_for(lambda: next((Path(r["run_dir"]) for r in record.read(sweep_dir)["runs"].values()
                                          if r.get("run_dir")), None), 120, "the job to start", slurm)
        _wait_for(lambda: _checkpoint_steps(run_dir) >= 8192, 300, "a checkpoint mid-run", slurm)
        wandb_id = (run_dir / "wandb_run_id.txt").read_text()
        only = lambda: next(iter(record.read(sweep_dir)["runs"].values()))  # noqa: E731 - the sweep's one run
        job = only()["slurm_job_id"]
        if how == "scontrol requeue":
            slurm.run("scontrol", "requeue", job)
        else:  # what SLURM sends signal_delay_s before the time limit, and on preemption
            slurm.run("scancel", "--signal=USR2", job)
            _wait_for(lambda: only()["status"] == "preempted", 60, "status preempted", slurm)
        _wait_for(lambda: only().get("restarts", 0) >= 1, 300, "the requeued job to start", slurm)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    runs = record.read(sweep_dir)["runs"]
    entry = runs[record.key_of(sweep_dir, run_dir)]
    assert len(runs) == 1 and entry["status"] == "done" and entry["restarts"] >= 1
    steps = [p["env_steps"] for p in read_curve(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] >= 60000 and steps[0] == 0
    gaps = {b - a for a, b in zip(steps, steps[1:])}
    assert max(gaps) <= 4096 + 8  # no point lost: one every eval_every (n_envs=8 rounds the step count)
    assert (run_dir / "wandb_run_id.txt").read_text() == wandb_id  # the same W&B run continues
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"


def test_a_pair_that_cannot_run_is_recorded_as_skipped_with_its_reason(slurm, tmp_path):
    """SAC on a discrete env cannot exist: the job says why, the record lists it as skipped, the
    sweep of the pairs that can run succeeds."""
    sweep_dir = tmp_path / "sweep"
    proc = run_sweep(slurm, *slurm_args(sweep_dir, "method=sac", "env=pendulum,cartpole", "method.total_steps=256",
                                        "method.eval_every=256", "env.eval_episodes=1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = record.read(sweep_dir)["runs"]
    by_env = {next(o for o in r["overrides"] if o.startswith("env=")): r for r in runs.values()}
    assert by_env["env=pendulum"]["status"] == "done"
    skipped = by_env["env=cartpole"]
    assert skipped["status"] == "skipped" and "continuous (Box) action space" in skipped["error"]


PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_every_run_it_sweeps(preset):
    """Every (method, env) pair a preset sweeps composes, and its method is built with the
    preset's per-method settings; the papers' presets have at least 5 seeds."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from llmrl.runner import _apply_method_overrides, _build

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[f"experiment={preset}"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params
        seeds = str(params.seed)
        # smoke tests, this machine's small runs and the main job (one seed, minutes) are not comparisons
        assert preset in ("smoke", "quickstart") or preset.endswith("_small") or seeds == "range(5)" or len(seeds.split(",")) >= 5
        assert cfg.experiment_name == preset
        if preset.startswith("promptpo_") or (preset.startswith("ultra_") and not preset.endswith("_small")):
            assert cfg.llm.name == "gemini" and cfg.llm.model == "gemini/gemini-3.1-pro-preview"  # unless the user picks another
        if preset.startswith("ultra_"):  # ULTRA against its line of work, all on one shared agent per seed
            assert {"statemask_r", "rice", "ultra_random_a", "ultra_random_r"} <= set(str(params.method).split(","))
            raw = OmegaConf.to_container(cfg.method_overrides, resolve=False)
            assert all(v["share_pretrained"] == "${hydra:sweep.dir}/pretrained" for v in raw.values())
        for method in str(params.method).split(","):
            for env in str(params.env).split(","):
                run_cfg = compose(config_name="config", overrides=[f"experiment={preset}", f"method={method}", f"env={env}"],
                                  return_hydra_config=True)
                HydraConfig.instance().set_config(run_cfg)  # presets may name ${hydra:sweep.dir}
                _apply_method_overrides(run_cfg)
                built = _build(run_cfg.method, "method")
                spec = _build(run_cfg.env, "env")
                assert built.name == method and spec.name == env
                table = run_cfg.method_overrides
                expected = {**(table.get(method) or {}), **(table.get(f"{method}@{env}") or {})}
                for key, value in expected.items():
                    if isinstance(value, dict) or OmegaConf.is_dict(value):  # a nested override merges into its node
                        assert all(run_cfg.method[key][k] == v for k, v in value.items()), key
                    else:
                        assert run_cfg.method[key] == value


def test_local_launcher_runs_in_parallel_and_records(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("-m", "experiment=smoke", "method=ppo,ultra_random,ppo_finetune", "seed=0", "hydra/launcher=local",
                   f"hydra.sweep.dir={sweep_dir}", "logger.progress=false", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = record.read(sweep_dir)["runs"]
    assert len(runs) == 3 and {r["status"] for r in runs.values()} == {"done"}
    assert len({r["run_dir"] for r in runs.values()}) == 3
    # launching the same sweep again finds every run complete and changes nothing
    before = {r["run_dir"]: (Path(r["run_dir"]) / "curve.csv").read_text() for r in runs.values()}
    again = run_cli("-m", "experiment=smoke", "method=ppo,ultra_random,ppo_finetune", "seed=0", "hydra/launcher=local",
                    f"hydra.sweep.dir={sweep_dir}", "logger.progress=false", timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {d: (Path(d) / "curve.csv").read_text() for d in before} == before


def test_sigterm_stops_a_run_at_once_and_it_resumes(tmp_path):
    """What a scheduler's SIGTERM does to a run anywhere: exit 143 without a result, the curve and
    checkpoint intact, summary.json `interrupted`; resume=true finishes one clean curve."""
    from tests.conftest import popen_cli

    run_dir = tmp_path / "run"
    args = ["method=ppo", "env=cartpole", "method.total_steps=40000", "method.eval_every=4096", "env.eval_episodes=2",
            "logger.progress=false", f"hydra.run.dir={run_dir}"]
    proc = popen_cli(*args)
    _wait_for(lambda: _checkpoint_steps(run_dir) >= 8192 or proc.poll() is not None, 300, "a checkpoint")
    proc.terminate()
    proc.wait(timeout=60)
    assert proc.returncode == 143
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]
    run_cli(*args, "resume=true", check=True)
    steps = [p["env_steps"] for p in read_curve(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] >= 40000
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"


def test_two_sweeps_in_one_directory_keep_both_and_a_damaged_record_is_rebuilt(tmp_path):
    sweep_dir = tmp_path / "sweep"
    tiny = ["method=ppo", "env=cartpole", "method.total_steps=256", "method.eval_every=256", "env.eval_episodes=1",
            "logger.progress=false", f"hydra.sweep.dir={sweep_dir}"]
    for seeds in ("0", "1"):  # two sweeps, each numbering its one job 0
        run_cli("-m", *tiny, f"seed={seeds}", check=True)
    runs = record.read(sweep_dir)["runs"]
    variant = "ppo+eval_episodes=1-385c21"  # env.eval_episodes=1 makes these runs a variant of the default
    assert sorted(runs) == [f"cartpole/{variant}/none/seed_0", f"cartpole/{variant}/none/seed_1"]
    assert {r["status"] for r in runs.values()} == {"done"}
    # a record cut short (a full disk, a killed writer) is reported, kept aside and rebuilt
    path = sweep_dir / record.RECORD_FILE
    path.write_text(path.read_text()[:40])
    proc = run_cli("-m", *tiny, "seed=2", check=True)
    assert "sweep_record.json was damaged" in proc.stdout + proc.stderr
    runs = record.read(sweep_dir)["runs"]
    assert sorted(runs) == [f"cartpole/{variant}/none/seed_{s}" for s in range(3)]
    assert {r["status"] for r in runs.values()} == {"done"} and list(sweep_dir.glob(f"{record.RECORD_FILE}.damaged-*"))
