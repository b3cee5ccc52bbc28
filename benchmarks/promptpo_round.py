"""PromptPO rounds through run.py (two rounds; the second is the steady-state round, the first
also pays for starting the sandbox): N = 10 candidates from the scripted server at 2 s latency,
evaluated in the sandbox across the machine's cores, versus the reference implementation's
one-after-another loop, N x (latency + evaluation of one candidate), measured in this invocation.
Goal: within 1.3x of (one latency + the evaluation share: N x evaluation / cores).

    .venv/bin/python benchmarks/promptpo_round.py [--n 10] [--latency 2.0]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.llm.scripted_server import Reply, ScriptedServer  # noqa: E402
from llmrl.sandbox import Sandbox, SandboxSettings  # noqa: E402
from llmrl.tracking import read_curve  # noqa: E402

# A policy that needs the full 5 x 500 steps of cartpole, so evaluation has real weight.
POLICY = ("class CartPolePolicy:\n    def act(self, obs):\n"
          "        return 1 if obs.pole_angle + 0.5 * obs.pole_angular_velocity > 0 else 0\n")
ENV = {"name": "cartpole", "gym_id": "CartPole-v1", "horizon": 500, "description": "cartpole"}


def evaluation_time(episodes: int) -> float:
    """Wall time to evaluate one candidate (5 episodes) in a warm sandbox, median of 5."""
    with tempfile.TemporaryDirectory() as tmp, Sandbox(SandboxSettings(workers=1), Path(tmp)) as sb:
        sb.warm(ENV)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            assert sb.run(sb.job(ENV, POLICY, list(range(episodes))))["ok"]
            times.append(time.perf_counter() - t)
    return sorted(times)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--latency", type=float, default=2.0)
    args = parser.parse_args()
    episodes = 5
    eval_s = evaluation_time(episodes)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        def responder(request, index):
            text = request["messages"][-1]["content"]
            return Reply(content=f"```python\n{POLICY}```", delay_s=0.0 if "Answer in 3-4 sentences" in text else args.latency)

        with ScriptedServer(responder=responder) as server:
            run_dir = Path(tmp) / "run"
            cmd = [sys.executable, str(REPO / "run.py"), "method=promptpo", "env=cartpole", "llm=vllm",
                   f"llm.api_base={server.api_base}", "llm.model=openai/scripted", f"llm.cache_dir={tmp}/cache",
                   "llm.cache=off", f"llm.concurrency={args.n}", "method.rounds=2", f"method.n_candidates={args.n}",
                   "method.feedback=false", "method.reflection=false", "env.eval_episodes=1", "logger.progress=false",
                   f"hydra.run.dir={run_dir}"]
            subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
            curve = read_curve(run_dir)
            first_s, round_s = curve[0]["wall_s"], curve[1]["wall_s"] - curve[0]["wall_s"]
    reference = args.n * (args.latency + eval_s)
    ideal = args.latency + args.n * eval_s / cores
    print(f"| measure ({args.n} candidates, {args.latency:g} s latency, {cores} cores) | seconds |")
    print("|---|---:|")
    print(f"| evaluation of one candidate ({episodes} x 500 steps, sandboxed) | {eval_s:.3f} |")
    print(f"| reference loop, N x (latency + evaluation) | {reference:.2f} |")
    print(f"| one latency + evaluation share (N x evaluation / cores) | {ideal:.2f} |")
    print(f"| this implementation: first round through run.py (incl. sandbox start and warm-up) | {first_s:.2f} |")
    print(f"| this implementation: a later round (incl. its held-out evaluation and checkpoint) | {round_s:.2f} |")
    print(f"| ratio to the ideal (goal <= 1.3) | {round_s / ideal:.2f} |")
    print(f"| speed-up over the reference | {reference / round_s:.1f}x |")


if __name__ == "__main__":
    main()
