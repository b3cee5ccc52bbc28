"""The real local model (llm=local): llama.cpp's server started by the project on loopback,
a short completion, tokens counted, the transcript kept, and the server gone afterwards, also
when the run is killed. `make setup` fetches the model and builds llama-server, so in CI this
runs (no skip)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from pathlib import Path

from hydra import compose, initialize_config_dir

from llmrl.llm import open_llm
from tests.conftest import REPO, cli_env


def local_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["llm=local", f"llm.cache_dir={tmp_path / 'cache'}", "llm.max_tokens=48", *overrides])
    return cfg.llm


def llama_server_pids() -> set[int]:
    """Live (not zombie) llama-server processes, read from /proc."""
    found = set()
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmd = (proc_dir / "cmdline").read_bytes().split(b"\0")
            state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"llama-server") and state != "Z":
            found.add(int(proc_dir.name))
    return found


def test_local_model_answers_and_stops(tmp_path):
    before = llama_server_pids()
    with open_llm(local_cfg(tmp_path), tmp_path) as llm:
        reply = llm.complete([{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}])
        started = llama_server_pids() - before
        assert len(started) == 1, "llm=local starts exactly one server"
        assert llm.settings.api_base.startswith("http://127.0.0.1:")
        # N replies of one prompt: one request (the prompt processed once), decoded in parallel slots
        http_before = llm.usage.http_calls
        poem = [{"role": "user", "content": "Write a four-line poem about the sea."}]
        replies = llm.sample(poem, n=3, tag="poems")
        assert llm.usage.http_calls == http_before + 1
        assert [r.sample_index for r in replies] == [0, 1, 2] and len({r.text for r in replies}) == 3
        assert replies[0].prompt_tokens > 0 and replies[1].prompt_tokens == replies[2].prompt_tokens == 0
        for r in replies:  # each reply's own tokens, counted with the served model's tokenizer
            assert r.completion_tokens == llm._count_tokens(r.text) > 0
        again = llm.sample(poem, n=3, tag="poems")  # every draw cached under its own key
        assert [r.text for r in again] == [r.text for r in replies] and all(r.cached for r in again)
        assert llm.usage.http_calls == http_before + 1
        cmd = (Path("/proc") / str(next(iter(started))) / "cmdline").read_bytes().split(b"\0")
        assert b"--parallel" in cmd and b"--kv-unified" in cmd and llm.settings.samples_per_request == llm.settings.concurrency
    assert reply.text.strip() and reply.completion_tokens > 0 and reply.prompt_tokens > 0
    assert reply.cost_usd == 0.0
    assert "def" in reply.text or "add" in reply.text
    records = [json.loads(x) for x in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert records[0]["response"] == reply.text and records[0]["completion_tokens"] == reply.completion_tokens
    assert [r["params"].get("n_in_request") for r in records[1:4]] == [3, 3, 3]  # the batched replies, each recorded
    time.sleep(0.5)
    assert not (llama_server_pids() & started), "the server must stop with the run"


def test_local_server_dies_with_a_killed_run(tmp_path):
    before = llama_server_pids()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "llm_check.py"), "llm=local", f"llm.cache_dir={tmp_path / 'cache'}",
         "llm.cache=off", "llm.max_tokens=400", "+prompt=Write a long essay about pendulums.",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        started: set[int] = set()
        while time.time() < deadline and not started:
            started = llama_server_pids() - before
            time.sleep(0.5)
        assert started, "the local server did not start"
        time.sleep(3)  # let it begin generating
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and llama_server_pids() & started:
        time.sleep(0.5)
    assert not (llama_server_pids() & started), "an orphaned llama.cpp server survived its run"


def test_llm_check_script_runs_the_local_model(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "llm_check.py"), "llm=local", f"llm.cache_dir={tmp_path / 'cache'}",
         "llm.max_tokens=24", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stderr[proc.stderr.index("{"):])
    assert report["completion_tokens"] > 0 and report["cost_usd"] == 0.0
    assert (tmp_path / "run" / "transcript.jsonl").is_file()


def test_threads_follow_free_cores():
    """A core kept busy at normal priority counts as busy; niced work does not (it yields)."""
    from llmrl.llm.local_server import busy_cores

    spin = [sys.executable, "-c", "while True: pass"]
    measured = {}
    for label, cmd in (("idle", None), ("busy", spin), ("niced", ["nice", "-n", "19", *spin])):
        proc = subprocess.Popen(cmd) if cmd else None
        try:
            time.sleep(0.3)
            measured[label] = busy_cores(1.0)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
    assert abs(measured["busy"] - measured["idle"] - 1.0) < 0.35, measured
    assert abs(measured["niced"] - measured["idle"]) < 0.35, measured
