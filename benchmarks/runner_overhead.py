"""Runner overhead: PPO env-steps per second through `run.py` versus a bare stable-baselines3
script with the identical hyperparameters, both measured in this one invocation.

    .venv/bin/python benchmarks/runner_overhead.py [--repeats 2] [--cartpole-steps 50000] [--hopper-steps 20000]

The runner's number is total env steps / the run's own wall time (summary.json: from the
tracker's start to the end, so it includes env construction, the counting wrappers, the
curve callback, two 1-episode evaluations and checkpoint writes, but not Python start-up);
the bare number is steps / (model construction + learn). Both run in fresh subprocesses,
interleaved; this machine's run-to-run noise is about +-15%, so the table gives the best of N
(the usual least-disturbed estimate) and the median. Ratio = runner / bare (goal >= 0.95).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bare_sb3(env_name: str, steps: int, seed: int = 0) -> float:
    import gymnasium as gym
    from omegaconf import OmegaConf
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from llmrl.sb3 import hyperparams

    env_cfg = OmegaConf.load(REPO / "conf" / "env" / f"{env_name}.yaml")
    hp = hyperparams.resolve("ppo", env_name, {})
    t0 = time.perf_counter()
    venv = DummyVecEnv(
        [lambda: Monitor(gym.make(env_cfg.gym_id, max_episode_steps=env_cfg.horizon)) for _ in range(int(hp.get("n_envs", 1)))]
    )
    norm = hyperparams.normalize_kwargs(hp)
    if norm:
        venv = VecNormalize(venv, gamma=float(hp.get("gamma", 0.99)), **norm)
    model = PPO(hp.get("policy", "MlpPolicy"), venv, seed=seed, device="cpu", verbose=0, **hyperparams.to_sb3_kwargs(hp))
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - t0
    return model.num_timesteps / elapsed


def bare_subprocess(env_name: str, steps: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--bare", env_name, str(steps)], cwd=REPO, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def through_runner(env_name: str, steps: int, seed: int = 0) -> tuple[float, float]:
    """(steps / wall time, steps / wall time less the time spent in evaluation)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, str(REPO / "run.py"), f"env={env_name}", "method=ppo", f"seed={seed}",
            f"method.total_steps={steps}", f"method.eval_every={steps * 10}", "env.eval_episodes=1",
            "logger.progress=false", f"hydra.run.dir={tmp}/run",
        ]
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    steps_done = summary["total_env_steps"]
    return steps_done / summary["wall_s"], steps_done / (summary["wall_s"] - summary["eval_wall_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cartpole-steps", type=int, default=30_000)
    parser.add_argument("--hopper-steps", type=int, default=10_000)
    parser.add_argument("--bare", nargs=2, metavar=("ENV", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:  # the child process of one bare measurement
        print(bare_sb3(args.bare[0], int(args.bare[1])))
        return
    rows = []
    for env_name, steps in (("cartpole", args.cartpole_steps), ("mujoco_hopper", args.hopper_steps)):
        bare, runner, runner_train = [], [], []
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            bare.append(bare_subprocess(env_name, steps))
            overall, training = through_runner(env_name, steps)
            runner.append(overall)
            runner_train.append(training)
            print(f"  {env_name}: bare {bare[-1]:.0f} steps/s, run.py {overall:.0f} steps/s "
                  f"({training:.0f} without evaluation)", file=sys.stderr)
        for stat, fn in (("best", max), ("median", statistics.median)):
            rows.append((env_name, steps, stat, fn(bare), fn(runner), fn(runner_train)))
    print()
    print(f"{args.repeats} interleaved repeats, each in a fresh process")
    print("| env | steps | statistic | bare SB3 (steps/s) | run.py (steps/s) | ratio | run.py less eval time (steps/s) | ratio |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for env_name, steps, stat, b, r, rt in rows:
        print(f"| {env_name} | {steps} | {stat} | {b:.0f} | {r:.0f} | {r / b:.3f} | {rt:.0f} | {rt / b:.3f} |")


if __name__ == "__main__":
    main()
