"""Sandbox speed, measured against raw in-process gymnasium loops in the same invocation.

The sandbox keeps the env, the reward and the score in a trusted evaluator process and runs the
LLM's policy in a separate sandboxed process; every step crosses a pipe twice. Three tables:

(1) One long evaluation (`workers=1`; on a machine with 2+ cores the auto placement gives the
    evaluator and the policy a core each) versus a raw loop running the same policy on the same
    observation class in one process; returns from the env reward and from the description's
    reward source (the default). Goal >= 0.8 on Hopper-class envs (env step dominates); the
    CartPole ratio is reported as it is.
(2) Every core busy (`workers` = cores, as PromptPO evaluates a round): aggregate steps/s of
    `cores` concurrent sandboxed evaluations versus `cores` raw loops in parallel processes, for
    each placement (shared: both processes of a worker on one core; free: no pinning).
(3) Fixed cost per candidate: job submitted -> policy built -> first act() -> result back.
    Goal <= 50 ms.

    .venv/bin/python benchmarks/sandbox_throughput.py [--episodes N] [--repeats 5]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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


def _raw_worker(args: tuple[str, list[int], int]) -> int:
    name, seeds, cpu = args
    os.sched_setaffinity(0, {cpu})
    return raw_loop(name, seeds, described=True)[1]


def parallel_raw(name: str, seeds: list[int], cpus: list[int]) -> float:
    """Aggregate steps/s of one raw loop per core, in parallel processes."""
    with mp.get_context("fork").Pool(len(cpus)) as pool:
        pool.map(_raw_worker, [(name, seeds[:2], c) for c in cpus])  # imports and env construction, not measured
        start = time.perf_counter()
        steps = sum(pool.map(_raw_worker, [(name, seeds, c) for c in cpus]))
        return steps / (time.perf_counter() - start)


def single(args, rows) -> str:
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
                rows.append((name, returns, steps, statistics.median(raw), statistics.median(sandboxed),
                             statistics.median(ratios)))
        starts = []
        env = env_dict("cartpole")
        for _ in range(20):
            t = time.perf_counter()
            r = sb.run(sb.job(env, FAIL_AT_ONCE, [0]))
            starts.append(time.perf_counter() - t)
            assert r["error"]["kind"] == "exception"
        rows.append(starts)
        return f"{sb.describe()['mode']}, placement {sb.describe()['placement']} (evaluator core, policy core, spin)"


def busy(args, rows) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    for name in POLICIES:
        seeds = list(range(args.episodes or EPISODES[name]))
        raw_rates = []
        by_placement: dict[str, list[float]] = {"shared": [], "free": []}
        for _ in range(max(1, args.repeats // 2)):
            raw_rates.append(parallel_raw(name, seeds, cpus))
            for placement in by_placement:
                settings = SandboxSettings(workers=len(cpus), placement=placement)
                with tempfile.TemporaryDirectory() as tmp, Sandbox(settings, Path(tmp)) as sb:
                    sb.warm(env_dict(name))
                    jobs = [sb.job(env_dict(name), POLICIES[name], seeds) for _ in cpus]
                    start = time.perf_counter()
                    results = sb.run_many(jobs)
                    elapsed = time.perf_counter() - start
                assert all(r["ok"] for r in results)
                by_placement[placement].append(sum(r["steps"] for r in results) / elapsed)
        raw_rate = statistics.median(raw_rates)
        for placement, rates in by_placement.items():
            rows.append((name, len(cpus), placement, raw_rate, statistics.median(rates), statistics.median(rates) / raw_rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=None, help="episodes per run (default: 100 cartpole, 150 hopper)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: list = []
    mode = single(args, rows)
    starts = rows.pop()
    busy_rows: list = []
    busy(args, busy_rows)
    print(f"(1) one evaluation, workers=1, sandbox {mode}; {args.repeats} paired repeats, medians")
    print("| env | returns from | steps per run | raw in-process loop (steps/s) | sandboxed (steps/s) | median paired ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for name, returns, steps, raw_rate, sb_rate, ratio in rows:
        print(f"| {name} | {returns} reward | {steps} | {raw_rate:.0f} | {sb_rate:.0f} | {ratio:.3f} |")
    print()
    print("(2) every core busy: one evaluation per core at once (described reward), aggregate steps/s, medians")
    print("| env | cores | placement | raw loops, one per core (steps/s) | sandboxed, workers = cores (steps/s) | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for name, cores, placement, raw_rate, sb_rate, ratio in busy_rows:
        print(f"| {name} | {cores} | {placement} | {raw_rate:.0f} | {sb_rate:.0f} | {ratio:.3f} |")
    print()
    print("(3) fixed cost per candidate (job submitted -> policy built -> first act() -> result back), 20 runs")
    print("| statistic | ms |")
    print("|---|---:|")
    print(f"| median | {statistics.median(starts) * 1000:.1f} |")
    print(f"| max | {max(starts) * 1000:.1f} |")


if __name__ == "__main__":
    main()
