"""The embedded model (llm=local) answering one PromptPO prompt N times: replies one after another
(one slot, as before) versus llama-server's parallel slots with one n-request (the prompt processed
once, the replies decoded together); prompt processing with and without the prefix cache; and one
round on a machine with one core kept busy, with all cores' threads versus the free cores'.

Every reply is exactly --tokens long (ignore_eos), so the runs differ only in how they are served.
The prompt is the one PromptPO sends in round 1 on CartPole (captured through run.py).

    .venv/bin/python benchmarks/local_llm.py [--tokens 128] [--n 1 2 4 10]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmrl.llm.local_server import LocalModelServer, available_cores  # noqa: E402
from llmrl.llm.model_store import ModelFiles, ensure_model  # noqa: E402
from llmrl.llm.scripted_server import Reply, ScriptedServer  # noqa: E402


def promptpo_prompt() -> list[dict]:
    """The messages of PromptPO's first policy request on CartPole, as run.py sends them."""
    seen: list[list[dict]] = []

    def responder(request, index):
        seen.append(request["messages"])
        return Reply(content="```python\nclass CartPolePolicy:\n    def act(self, obs):\n        return 0\n```")

    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(responder=responder) as server:
        subprocess.run([sys.executable, str(REPO / "run.py"), "method=promptpo", "env=cartpole", "llm=vllm",
                        f"llm.api_base={server.api_base}", "llm.model=openai/scripted", "llm.cache=off",
                        f"llm.cache_dir={tmp}/cache", "method.rounds=1", "method.n_candidates=1", "env.eval_episodes=1",
                        "logger.progress=false", f"hydra.run.dir={tmp}/run"], cwd=REPO, check=True, capture_output=True)
    return seen[0]


def fresh(messages: list[dict]) -> list[dict]:
    """The same prompt with a new first line, so no cache holds any of it."""
    out = [dict(m) for m in messages]
    out[0]["content"] = f"[{uuid.uuid4().hex[:8]}]\n" + out[0]["content"]
    return out


class Bench:
    def __init__(self, server: LocalModelServer, tokens: int) -> None:
        self.url = f"http://{server.host}:{server.port}/v1/chat/completions"
        self.tokens = tokens

    def request(self, messages: list[dict], n: int = 1, seed: int = 1, cache_prompt: bool = True) -> dict:
        body = {"model": "local", "messages": messages, "max_tokens": self.tokens, "temperature": 0.7, "seed": seed,
                "n": n, "ignore_eos": True, "cache_prompt": cache_prompt}
        answer = httpx.post(self.url, json=body, timeout=3600)
        answer.raise_for_status()
        return answer.json()

    def sequential(self, messages: list[dict], n: int, cache_prompt: bool = True) -> float:
        start = time.perf_counter()
        for i in range(n):
            self.request(messages, seed=i, cache_prompt=cache_prompt)
        return time.perf_counter() - start

    def n_request(self, messages: list[dict], n: int) -> float:
        start = time.perf_counter()
        reply = self.request(messages, n=n)
        assert len(reply["choices"]) == n
        return time.perf_counter() - start

    def separate_parallel(self, messages: list[dict], n: int) -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i: self.request(messages, seed=i), range(n)))
        return time.perf_counter() - start


def serve(weights: Path, slots: int, threads: int | None, log: Path) -> LocalModelServer:
    return LocalModelServer(weights, "local", n_ctx=8192, slots=slots, n_threads=threads, log_path=log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per reply (every reply exactly this long)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 10])
    parser.add_argument("--busy-n", type=int, default=4, help="replies in the busy-core round")
    args = parser.parse_args()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["llm=local"]).llm
    weights = ensure_model(ModelFiles(**cfg.server.weights))
    prompt = promptpo_prompt()
    cores = available_cores()
    log = Path(tempfile.mkdtemp()) / "server.log"
    rows = []
    print(f"# {cores} cores; prompt {sum(len(m['content']) for m in prompt)} chars; {args.tokens} tokens per reply",
          file=sys.stderr)

    with serve(weights, 1, None, log) as one:
        b = Bench(one, args.tokens)
        b.request(fresh(prompt))  # warm-up (weights paged in)
        tokens = b.request(fresh(prompt))["usage"]["prompt_tokens"]
        cold = b.request(fresh(prompt))["timings"]
        warm_msgs = fresh(prompt)
        b.request(warm_msgs)
        warm = b.request(warm_msgs, seed=2)["timings"]
        # the reference: one reply alone, median of 3 (this machine's noise is +-15% run to run)
        alone = sorted(b.sequential(fresh(prompt), 1) for _ in range(3))[1]
        seq = {n: b.sequential(fresh(prompt), n) for n in args.n}
        seq_nocache = {n: b.sequential(fresh(prompt), n, cache_prompt=False) for n in args.n if n in (1, 4)}
    with serve(weights, max(args.n), None, log) as many:
        b = Bench(many, args.tokens)
        b.request(fresh(prompt))
        par = {n: b.n_request(fresh(prompt), n) for n in args.n}
        sep = {n: b.separate_parallel(fresh(prompt), n) for n in args.n if n in (4,)}

    busy = {}
    if cores > 1:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            for label, threads in ((f"all {cores} cores' threads (before)", cores), ("free cores' threads (now)", None)):
                with serve(weights, args.busy_n, threads, log) as s:
                    b = Bench(s, args.tokens)
                    b.request(fresh(prompt))
                    busy[f"{label}: {s.threads} threads"] = b.n_request(fresh(prompt), args.busy_n)
        finally:
            spinner.kill()
            spinner.wait()

    one_s = alone
    print(f"One reply alone (1 slot, cold prompt, median of 3): {one_s:.1f} s")
    print()
    print(f"| replies N | one after another, 1 slot (s) | parallel slots, one n-request (s) | parallel / one reply alone | "
          f"speed-up | generated tok/s (parallel) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.n:
        print(f"| {n} | {seq[n]:.1f} | {par[n]:.1f} | {par[n] / one_s:.2f}x | {seq[n] / par[n]:.2f}x | "
              f"{n * args.tokens / par[n]:.1f} |")
    print()
    print("| prompt processing | value |")
    print("|---|---:|")
    print(f"| PromptPO round-1 prompt (CartPole) | {tokens} tokens |")
    print(f"| cold prompt: tokens processed, time | {cold['prompt_n']} in {cold['prompt_ms'] / 1000:.1f} s "
          f"({cold['prompt_per_second']:.0f} tok/s) |")
    print(f"| same prompt again (prefix cache): tokens processed, time | {warm['prompt_n']} in {warm['prompt_ms'] / 1000:.2f} s |")
    for n, t in seq_nocache.items():
        print(f"| {n} replies one after another without the prefix cache | {t:.1f} s (with it: {seq[n]:.1f} s) |")
    for n, t in sep.items():
        print(f"| {n} replies as {n} separate parallel requests (prompt processed {n} times) | {t:.1f} s "
              f"(one n-request: {par[n]:.1f} s) |")
    if busy:
        print()
        print(f"| one core kept busy by another process, {args.busy_n} replies | seconds |")
        print("|---|---:|")
        for label, t in busy.items():
            print(f"| {label} | {t:.1f} |")
    print(json.dumps({"sequential": seq, "parallel": par, "busy": busy}), file=sys.stderr)


if __name__ == "__main__":
    main()
