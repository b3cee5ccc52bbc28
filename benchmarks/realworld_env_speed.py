"""Speed of the traffic (SUMO) and pandemic envs, against references measured in the same invocation.

(1) Env steps/s of a raw in-process loop (env.step + observation class + policy + the description's
    reward, as PromptPO scores), seconds per full-horizon episode and per PromptPO round of
    10 candidates x 5 episodes on one core; CartPole's raw loop in the same run as the yardstick.
(2) traffic_merge only: the second env of a process (its SUMO in a worker process, one message per
    step) against the first (libsumo in-process); and building the merge network with netconvert
    (once per configuration) against loading it from the on-disk cache.
(3) Sandboxed evaluation (the policy in the bubblewrap sandbox, workers=1) against the raw loop.

    .venv/bin/python benchmarks/realworld_env_speed.py [--episodes 3] [--repeats 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from sandbox_throughput import POLICIES, env_dict, raw_loop  # noqa: E402  (the same raw loop as the sandbox benchmark)

from llmrl.envs.spec import EnvSpec  # noqa: E402
from llmrl.sandbox import Sandbox, SandboxSettings  # noqa: E402

POLICIES.update({
    "traffic_merge": "import numpy as np\n\nclass TrafficPolicy:\n    def act(self, obs):\n"
                     "        want = np.where(obs.leader_headways > 2.0 * obs.ego_speeds, 1.0, -1.5)\n"
                     "        return np.where(obs.present, want, 0.0).astype(np.float32)\n",
    "pandemic": "class PandemicPolicy:\n    def act(self, obs):\n"
                "        infected = obs.global_infection_summary[-1, -1, 2]\n"
                "        stage = obs.stage[-1, -1, 0]\n"
                "        return 2 if infected > 0.02 and stage < 3 else 0 if infected < 0.005 and stage > 0 else 1\n",
})
ROUND_EPISODES = 10 * 5


def worker_path(episodes: int) -> tuple[float, float]:
    """steps/s of traffic_merge's first env (libsumo here) and of a second one (SUMO in a worker process)."""
    spec = EnvSpec(**env_dict("traffic_merge"))
    first, second = spec.make(), spec.make()
    rates = []
    try:
        for env in (first, second):
            env.reset(seed=0)   # start-up not measured
            steps, start = 0, time.perf_counter()
            for s in range(episodes):
                env.reset(seed=s)
                done = False
                while not done:
                    _, _, terminated, truncated, _ = env.step(np.zeros(10, dtype=np.float32))
                    steps += 1
                    done = terminated or truncated
            rates.append(steps / (time.perf_counter() - start))
        assert first.unwrapped._uses_libsumo and second.unwrapped._remote is not None
    finally:
        first.close()
        second.close()
    return rates[0], rates[1]


def network_build() -> tuple[float, float]:
    """Seconds to netconvert the merge network (cache emptied) and to find it cached."""
    spec = EnvSpec(**env_dict("traffic_merge"))
    env = spec.make().unwrapped
    for folder in Path(tempfile.gettempdir()).glob("llmrl-sumo-merge-*"):
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    env._sumo_args(0)
    built = time.perf_counter() - start
    start = time.perf_counter()
    env._sumo_args(0)
    cached = time.perf_counter() - start
    env.close()
    return built, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3, help="full-horizon episodes per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seeds = list(range(args.episodes))
    cart = statistics.median(raw_loop("cartpole", list(range(20)), described=True)[0] for _ in range(args.repeats))
    rows, sandbox_rows = [], []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(SandboxSettings(workers=1), Path(tmp)) as sb:
        for name in ("traffic_merge", "pandemic"):
            horizon = EnvSpec(**env_dict(name)).horizon
            raw = statistics.median(raw_loop(name, seeds, described=True)[0] for _ in range(args.repeats))
            rows.append((name, horizon, raw, horizon / raw, ROUND_EPISODES * horizon / raw, raw / cart))
            env = env_dict(name)
            sb.warm(env)
            ratios, rates = [], []
            for _ in range(args.repeats):
                base = raw_loop(name, seeds, described=True)[0]
                start = time.perf_counter()
                result = sb.run(sb.job(env, POLICIES[name], seeds))
                assert result["ok"], result["error"]
                rate = result["steps"] / (time.perf_counter() - start)
                rates.append(rate)
                ratios.append(rate / base)
            sandbox_rows.append((name, statistics.median(rates), statistics.median(ratios)))
        mode = sb.describe()["mode"]
    libsumo_rate, worker_rate = worker_path(args.episodes)
    built, cached = network_build()

    print(f"(1) raw in-process loops (described reward), {args.episodes} episodes x {args.repeats} repeats, medians; "
          f"CartPole raw loop in this run: {cart:.0f} steps/s")
    print("| env | horizon | steps/s | s per episode | s per PromptPO round (50 episodes, 1 core) | vs CartPole |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, horizon, raw, per_episode, per_round, vs_cart in rows:
        print(f"| {name} | {horizon} | {raw:.0f} | {per_episode:.2f} | {per_round:.1f} | {vs_cart:.3f} |")
    print()
    print("(2) traffic_merge: libsumo in-process vs a second env's SUMO worker process (zero actions); network build")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| first env, libsumo (steps/s) | {libsumo_rate:.0f} |")
    print(f"| second env, worker process (steps/s) | {worker_rate:.0f} |")
    print(f"| ratio | {worker_rate / libsumo_rate:.3f} |")
    print(f"| netconvert build (s) | {built:.3f} |")
    print(f"| cached network (s) | {cached:.4f} |")
    print()
    print(f"(3) sandboxed evaluation (sandbox {mode}, workers=1) vs the raw loop, {args.repeats} paired repeats, medians")
    print("| env | sandboxed (steps/s) | ratio to raw |")
    print("|---|---:|---:|")
    for name, rate, ratio in sandbox_rows:
        print(f"| {name} | {rate:.0f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
