"""The LLM layer over real HTTP: litellm -> openai SDK -> a scripted OpenAI-compatible server."""
from __future__ import annotations

import json
import os
import time

import pytest

from llmrl.errors import ConfigError
from llmrl.llm import LLMBudgetExhausted, LLMReplayMiss, LLMRequestError, open_llm
from llmrl.llm.scripted_server import Reply, ScriptedServer, context_too_long, rate_limited, server_error, unauthorized
from llmrl.tracking import read_curve
from tests.conftest import run_cli

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


def llm_cfg(server, tmp_path, **over):
    cfg = {"name": "test", "model": "openai/scripted-model", "api_base": server.api_base, "api_key_env": None,
           "temperature": 0.0, "max_tokens": 64, "timeout_s": 5.0, "max_retries": 3, "backoff_initial_s": 0.05,
           "backoff_max_s": 2.0, "concurrency": 4, "cache": "readwrite", "cache_dir": str(tmp_path / "cache"),
           "cost_per_input_token": 1e-6, "cost_per_output_token": 2e-6}
    cfg.update(over)
    return cfg


def test_samples_run_concurrently_within_the_bound(server, tmp_path):
    server.responder = lambda req, i: Reply(content=f"answer {i}", delay_s=0.5)
    with open_llm(llm_cfg(server, tmp_path, concurrency=4, cache="off"), tmp_path) as llm:
        replies = llm.sample(MSG, n=8)
    assert len(replies) == 8 and all(r.ok for r in replies)
    assert [r.sample_index for r in replies] == list(range(8))
    assert server.max_in_flight == 4  # the bound is respected and reached (speed: benchmarks/llm_concurrency.py)


def test_batch_of_prompts_returns_in_order(server, tmp_path):
    server.responder = lambda req, i: Reply(content="echo " + req["messages"][-1]["content"], delay_s=0.05 * (i % 3))
    prompts = [[{"role": "user", "content": f"p{k}"}] for k in range(6)]
    with open_llm(llm_cfg(server, tmp_path, cache="off"), tmp_path) as llm:
        replies = llm.complete_many(prompts)
    assert [r.text for r in replies] == [f"echo p{k}" for k in range(6)]


def test_transient_failures_are_retried_honouring_retry_after(server, tmp_path):
    server.script(rate_limited(0.4), server_error(503), Reply(raw=b"{not json"), Reply(drop=True), Reply(content="finally"))
    with open_llm(llm_cfg(server, tmp_path, cache="off", max_retries=5), tmp_path) as llm:
        start = time.perf_counter()
        reply = llm.complete(MSG)
        elapsed = time.perf_counter() - start
    assert reply.text == "finally" and reply.attempts == 5
    assert len(server.completions) == 5
    assert elapsed >= 0.4  # waited as the server asked
    lines = [json.loads(x) for x in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert [bool(x.get("error")) for x in lines] == [True, True, True, True, False]


def test_a_hang_past_the_timeout_is_retried(server, tmp_path):
    server.script(Reply(delay_s=3.0), Reply(content="second try"))
    with open_llm(llm_cfg(server, tmp_path, cache="off", timeout_s=1.0), tmp_path) as llm:
        reply = llm.complete(MSG)
    assert reply.text == "second try" and reply.attempts == 2


def test_retries_run_out_with_a_message_that_says_what_to_change(server, tmp_path):
    server.responder = lambda req, i: server_error(500)
    with open_llm(llm_cfg(server, tmp_path, cache="off", max_retries=2), tmp_path) as llm, \
            pytest.raises(LLMRequestError, match="failed after 3 attempts.*llm.max_retries"):
        llm.complete(MSG)
    assert len(server.completions) == 3


@pytest.mark.parametrize("reply, needle", [(unauthorized(), "credentials"), (context_too_long(), "context window")])
def test_errors_no_retry_can_fix_fail_at_once(server, tmp_path, reply, needle):
    server.script(reply)
    with open_llm(llm_cfg(server, tmp_path, cache="off"), tmp_path) as llm, pytest.raises(LLMRequestError, match=needle):
        llm.complete(MSG)
    assert len(server.completions) == 1


def test_empty_and_truncated_replies_are_reported(server, tmp_path):
    server.script(Reply(content=""), Reply(content="cut off mid", finish_reason="length"))
    with open_llm(llm_cfg(server, tmp_path, cache="off"), tmp_path) as llm:
        empty, cut = llm.complete(MSG, sample_index=0), llm.complete(MSG, sample_index=1)
    assert empty.problem == "empty content" and not empty.ok
    assert "truncated" in cut.problem and "llm.max_tokens" in cut.problem


def test_tokens_and_cost_are_accounted(server, tmp_path):
    server.responder = lambda req, i: Reply(content="one two three", prompt_tokens=100, completion_tokens=50)
    with open_llm(llm_cfg(server, tmp_path, cache="off"), tmp_path) as llm:
        llm.sample(MSG, n=3)
        u = llm.usage
    assert (u.calls, u.prompt_tokens, u.completion_tokens) == (3, 300, 150)
    assert u.cost_usd == pytest.approx(3 * (100 * 1e-6 + 50 * 2e-6))
    assert u.curve_columns() == {"llm_calls": 3, "llm_tokens": 450, "llm_cost_usd": round(u.cost_usd, 6)}


def test_caps_stop_before_the_next_call(server, tmp_path):
    with open_llm(llm_cfg(server, tmp_path, cache="off", max_calls=3), tmp_path) as llm:
        llm.sample(MSG, n=3)
        with pytest.raises(LLMBudgetExhausted, match="llm.max_calls=3"):
            llm.complete(MSG, sample_index=9)
    assert len(server.completions) == 3
    server.responder = lambda req, i: Reply(content="x", prompt_tokens=1000, completion_tokens=0)
    with open_llm(llm_cfg(server, tmp_path, cache="off", budget_usd=0.0025), tmp_path) as llm:
        llm.complete(MSG), llm.complete(MSG, sample_index=1), llm.complete(MSG, sample_index=2)
        with pytest.raises(LLMBudgetExhausted, match="llm.budget_usd"):
            llm.complete(MSG, sample_index=3)


def test_cache_replays_without_http_and_replay_miss_names_the_request(server, tmp_path):
    server.responder = lambda req, i: Reply(content=f"reply number {i}")
    (tmp_path / "a").mkdir()
    with open_llm(llm_cfg(server, tmp_path), tmp_path / "a") as llm:
        first = [r.text for r in llm.sample(MSG, n=3)]
        first_usage = llm.usage.curve_columns()
    sent = len(server.requests)
    (tmp_path / "b").mkdir()
    with open_llm(llm_cfg(server, tmp_path, cache="replay"), tmp_path / "b") as llm:
        again = [r.text for r in llm.sample(MSG, n=3)]
        assert llm.usage.curve_columns() == first_usage and llm.usage.http_calls == 0
        with pytest.raises(LLMReplayMiss, match="'sample_index': 3.*hello"):
            llm.complete(MSG, sample_index=3)
    assert again == first and len(set(first)) == 3
    assert len(server.requests) == sent  # not one HTTP request, preflight included
    hits = [json.loads(x) for x in (tmp_path / "b" / "transcript.jsonl").read_text().splitlines()]
    assert [h.get("cache_hit") for h in hits[:3]] == [True, True, True]


def test_every_request_is_a_draw_of_its_own(server, tmp_path):
    """Seed 1 never replays seed 0's answers; each request carries a seed derived from its draw."""
    server.responder = lambda req, i: Reply(content=f"answer for seed {req.get('seed')}")
    runs = {}
    for seed in (0, 1, 0):
        before = len(server.completions)
        identity = {"experiment": "e", "env": "cartpole", "method": "promptpo", "seed": seed}
        with open_llm(llm_cfg(server, tmp_path), tmp_path, identity) as llm:
            texts = [r.text for r in llm.sample(MSG, n=3)]
        sent = server.completions[before:]
        if seed in runs:  # the same run again: every answer from the cache, identical
            assert not sent and texts == runs[seed]
        else:
            assert len(sent) == 3
            runs[seed] = texts
    seeds = [r["json"]["seed"] for r in server.completions]
    assert len(seeds) == 6 and len(set(seeds)) == 6
    assert set(runs[0]).isdisjoint(runs[1])


def test_every_request_waits_for_a_slot(server, tmp_path):
    """Requests sent directly from many threads (repairs) obey llm.concurrency like samples do."""
    import threading

    server.responder = lambda req, i: Reply(content="ok", delay_s=0.2)
    with open_llm(llm_cfg(server, tmp_path, concurrency=1, cache="off"), tmp_path) as llm:
        threads = [threading.Thread(target=llm.complete, args=(MSG,), kwargs={"tag": f"repair{k}"}) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(server.completions) == 4 and server.max_in_flight == 1


def test_concurrent_writers_of_one_cache_entry_do_not_collide(tmp_path):
    """Threads of one process writing the same key (identical concurrent requests) never trip
    over each other's temporary files."""
    import threading

    from llmrl.llm.cache import ResponseCache

    cache, errors = ResponseCache(tmp_path / "cache", "readwrite"), []

    def writer(k):
        try:
            for i in range(300):
                cache.put("ab" * 32, {"i": i}, {"text": f"{k}-{i}"})
        except Exception as exc:  # noqa: BLE001 - the test counts them
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and cache.get("ab" * 32)["text"].endswith("-299")


def test_preflight_names_missing_key_and_silent_endpoint(server, tmp_path, monkeypatch):
    monkeypatch.delenv("LLMRL_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable LLMRL_TEST_KEY"):
        with open_llm(llm_cfg(server, tmp_path, api_key_env="LLMRL_TEST_KEY"), tmp_path):
            pass
    with pytest.raises(ConfigError, match="does not answer"):
        with open_llm(llm_cfg(server, tmp_path, api_base="http://127.0.0.1:9/v1"), tmp_path):
            pass
    with ScriptedServer(api_key="right") as guarded:
        monkeypatch.setenv("LLMRL_TEST_KEY", "wrong")
        with pytest.raises(ConfigError, match="refused the credentials"):
            with open_llm(llm_cfg(guarded, tmp_path, api_key_env="LLMRL_TEST_KEY"), tmp_path):
                pass
        monkeypatch.setenv("LLMRL_TEST_KEY", "right")
        with open_llm(llm_cfg(guarded, tmp_path, api_key_env="LLMRL_TEST_KEY", cache="off"), tmp_path) as llm:
            assert llm.complete(MSG).ok


# ---- through the runner (python run.py ...) -----------------------------------------------
PROBE = ["method=ppo", "method._target_=tests.support.LLMProbeMethod", "method.name=llm_probe", "logger.progress=false"]


def probe_args(server, tmp_path, run_dir, *extra):
    return [*PROBE, "llm=vllm", f"llm.api_base={server.api_base}", f"llm.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={run_dir}", *extra]


def test_runner_logs_llm_columns_and_replay_reproduces_the_curve(server, tmp_path):
    server.responder = lambda req, i: Reply(content="word " * (i % 5 + 1), prompt_tokens=20)
    run_cli(*probe_args(server, tmp_path, tmp_path / "first"), check=True)
    first = read_curve(tmp_path / "first")
    assert [p["llm_calls"] for p in first] == [2, 4, 6]
    assert all(p["llm_tokens"] > 0 for p in first)
    transcript = (tmp_path / "first" / "transcript.jsonl").read_text().splitlines()
    assert len(transcript) == 6 and all(json.loads(x)["messages"] for x in transcript)
    summary = json.loads((tmp_path / "first" / "summary.json").read_text())
    assert summary["llm_usage"]["calls"] == 6 and summary["llm_calls"] == 6

    sent = len(server.requests)
    run_cli(*probe_args(server, tmp_path, tmp_path / "second", "llm.cache=replay"), check=True)
    assert len(server.requests) == sent
    second = read_curve(tmp_path / "second")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(second) == strip(first)

    # the same command again with the default readwrite cache: no completion request either
    completions = len(server.completions)
    run_cli(*probe_args(server, tmp_path, tmp_path / "third"), check=True)
    assert len(server.completions) == completions
    assert strip(read_curve(tmp_path / "third")) == strip(first)


def test_runner_stops_cleanly_at_the_call_cap(server, tmp_path):
    proc = run_cli(*probe_args(server, tmp_path, tmp_path / "capped", "llm.max_calls=3", "llm.cache=off"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "capped" / "summary.json").read_text())
    assert summary["status"] == "budget_exhausted" and "llm.max_calls=3" in summary["error"]
    assert [p["env_steps"] for p in read_curve(tmp_path / "capped")] == [1]


def test_runner_missing_key_is_one_line_before_any_work(tmp_path):
    env_without = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.run([sys.executable, str(REPO / "run.py"), *PROBE, "llm=gemini", f"hydra.run.dir={tmp_path / 'r'}"],
                          cwd=REPO, capture_output=True, text=True, env=env_without, timeout=300)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "GEMINI_API_KEY" in errors[0]
    assert not (tmp_path / "r" / "curve.csv").exists()
