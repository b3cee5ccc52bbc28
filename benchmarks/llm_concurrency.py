"""LLM layer speed over real HTTP (litellm -> openai SDK -> the scripted server on loopback):

1. N = 10 samples of one prompt at 1 s injected server latency: wall time with concurrency
   10 versus one after another (concurrency 1), measured in this invocation. Goal: concurrent
   <= 1.3 s, i.e. >= 7x faster.
2. Cache-hit replay of 100 calls (llm.cache=replay after a recording run): total wall time.
   Goal: well under a second.

    .venv/bin/python benchmarks/llm_concurrency.py [--n 10] [--latency 1.0] [--replay-calls 100]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrl.llm import open_llm  # noqa: E402
from llmrl.llm.scripted_server import Reply, ScriptedServer  # noqa: E402


def cfg(server: ScriptedServer, cache_dir: str, **over) -> dict:
    base = {"name": "bench", "model": "openai/scripted-model", "api_base": server.api_base, "temperature": 1.0,
            "max_tokens": 64, "timeout_s": 30, "max_retries": 0, "concurrency": 10, "cache": "off",
            "cache_dir": cache_dir, "cost_per_input_token": 0.0, "cost_per_output_token": 0.0}
    return {**base, **over}


def timed_samples(server: ScriptedServer, cache_dir: str, n: int, concurrency: int) -> float:
    with open_llm(cfg(server, cache_dir, concurrency=concurrency), None) as llm:
        llm.complete([{"role": "user", "content": "warm-up"}])  # import and connection set-up, not measured
        start = time.perf_counter()
        replies = llm.sample([{"role": "user", "content": "write a policy"}], n=n)
        elapsed = time.perf_counter() - start
    assert all(r.ok for r in replies)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--replay-calls", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(
        responder=lambda req, i: Reply(content=f"class Policy: # {i}", delay_s=args.latency if "warm" not in req["messages"][-1]["content"] else 0.0)
    ) as server:
        sequential = timed_samples(server, tmp, args.n, concurrency=1)
        concurrent = timed_samples(server, tmp, args.n, concurrency=args.n)

        server.responder = lambda req, i: Reply(content=f"reply {i}")
        prompts = [[{"role": "user", "content": f"prompt {k}"}] for k in range(args.replay_calls)]
        with open_llm(cfg(server, tmp, cache="readwrite"), None) as llm:
            llm.complete_many(prompts)
        sent = len(server.requests)
        with open_llm(cfg(server, tmp, cache="replay"), None) as llm:
            start = time.perf_counter()
            replayed = llm.complete_many(prompts)
            replay_s = time.perf_counter() - start
        assert len(server.requests) == sent and all(r.cached for r in replayed)

    print(f"| measure | value |\n|---|---:|")
    print(f"| {args.n} samples at {args.latency:g} s latency, one after another | {sequential:.3f} s |")
    print(f"| {args.n} samples at {args.latency:g} s latency, concurrent | {concurrent:.3f} s |")
    print(f"| speed-up | {sequential / concurrent:.2f}x |")
    print(f"| replay of {args.replay_calls} cached calls (0 HTTP requests) | {replay_s * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
