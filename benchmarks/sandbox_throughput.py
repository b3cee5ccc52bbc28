"""Sandbox speed: (1) evaluation throughput of a sandboxed rollout versus a raw in-process
gymnasium loop running the same policy on the same observation class, long rollouts; goal
>= 0.9 on cartpole and mujoco_hopper. Measured twice: returns from the env's reward
(`sandbox.returns=env`) against a raw loop that sums env rewards, and returns from the
description's reward source (`sandbox.returns=described`, the default, as the paper computes
them) against a raw loop that does the same. (2) fixed cost per candidate, from submitting the job to
the first environment step (a policy that fails on its first act() call, so the whole
evaluation is start-up); goal <= 50 ms. Both measured in this invocation.

    .venv/bin/python benchmarks/sandbox_throughput.py [--episodes N] [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf  # noqa: E402

from llmrl.envs.spec import EnvSpec  # noqa: E402
from llmrl.sandbox import Sandbox, SandboxSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
POLICIES = {
    "cartpole": "class CartPolePolicy:\n    def act(self, obs):\n"
                "        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0\n",
    # a stable standing controller, so episodes run the full 1000 steps
    "mujoco_hopper": "import numpy as np\n\nclass HopperPolicy:\n    def act(self, obs):\n"
                     "        return np.clip(-2.0 * obs.raw[1:4] - 0.2 * obs.raw[7:10], -1, 1)\n",
}
# Long rollouts (the per-candidate fixed cost is measured separately below): 50k and ~25k steps.
EPISODES = {"cartpole": 100, "mujoco_hopper": 150}
FAIL_AT_ONCE = "class P:\n    def act(self, obs):\n        raise RuntimeError('first step')\n"


def env_dict(name: str) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "env" / f"{name}.yaml"), resolve=True)
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def raw_loop(name: str, seeds: list[int], described: bool) -> tuple[float, int]:
    """steps/s of env.step + observation class + policy.act in this process (and, with
    `described`, the return computed with the description's reward source, as PromptPO does)."""
    spec = EnvSpec(**env_dict(name))
    desc = spec.describe()
    env, wrap, reward = spec.make(), desc.observation_class, desc.reward_fn
    namespace: dict = {}
    exec(POLICIES[name], namespace)
    policy = next(v for k, v in namespace.items() if k.endswith("Policy"))()
    steps = 0
    start = time.perf_counter()
    total = 0.0
    for s in seeds:
        obs, _ = env.reset(seed=s)
        wrapped = wrap(obs)
        done = False
        while not done:
            action = policy.act(wrapped)
            obs, r, terminated, truncated, info = env.step(action)
            next_wrapped = wrap(obs)
            total += reward(wrapped, action, next_wrapped, info) if described else r
            wrapped = next_wrapped
            steps += 1
            done = terminated or truncated
    return steps / (time.perf_counter() - start), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=None, help="episodes per run (default: 100 cartpole, 150 hopper)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(SandboxSettings(workers=1), Path(tmp)) as sb:
        for name in POLICIES:
            env = env_dict(name)
            sb.warm(env)
            seeds = list(range(args.episodes or EPISODES[name]))
            for returns in ("env", "described"):
                sb.settings.returns = returns
                raw, sandboxed, ratios = [], [], []
                # This machine's speed drifts over seconds, so each sandboxed run is paired with a raw run
                # right before it, and the table reports the median of the paired ratios.
                for _ in range(args.repeats):
                    rate, steps = raw_loop(name, seeds, described=returns == "described")
                    start = time.perf_counter()
                    result = sb.run(sb.job(env, POLICIES[name], seeds))
                    assert result["ok"], result["error"]
                    sb_rate = result["steps"] / (time.perf_counter() - start)
                    raw.append(rate)
                    sandboxed.append(sb_rate)
                    ratios.append(sb_rate / rate)
                rows.append((name, returns, steps, statistics.median(raw), statistics.median(sandboxed), statistics.median(ratios)))
        starts = []
        env = env_dict("cartpole")
        for _ in range(20):
            t = time.perf_counter()
            r = sb.run(sb.job(env, FAIL_AT_ONCE, [0]))
            starts.append(time.perf_counter() - t)
            assert r["error"]["kind"] == "exception"
        mode = sb.describe()["mode"]
    print(f"sandbox mode: {mode}; {args.repeats} paired repeats, medians")
    print("| env | returns from | steps per run | raw in-process loop (steps/s) | sandboxed (steps/s) | median paired ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for name, returns, steps, raw_rate, sb_rate, ratio in rows:
        print(f"| {name} | {returns} reward | {steps} | {raw_rate:.0f} | {sb_rate:.0f} | {ratio:.3f} |")
    print()
    print("| fixed cost per candidate (job submitted -> first act() -> result back), 20 runs | ms |")
    print("|---|---:|")
    print(f"| median | {statistics.median(starts) * 1000:.1f} |")
    print(f"| max | {max(starts) * 1000:.1f} |")


if __name__ == "__main__":
    main()
