"""The real local model (llm=local): llama.cpp's server started by the project on loopback,
a short completion, tokens counted, the transcript kept, and the server gone afterwards, also
when the run is killed. `make setup` fetches the model and builds llama-cpp-python, so in CI
this runs (no skip)."""
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
    """Live (not zombie) processes running llama_cpp.server, read from /proc."""
    found = set()
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmd = (proc_dir / "cmdline").read_bytes().split(b"\0")
            state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"llama_cpp.server" in cmd and state != "Z":
            found.add(int(proc_dir.name))
    return found


def test_local_model_answers_and_stops(tmp_path):
    before = llama_server_pids()
    with open_llm(local_cfg(tmp_path), tmp_path) as llm:
        reply = llm.complete([{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}])
        started = llama_server_pids() - before
        assert len(started) == 1, "llm=local starts exactly one server"
        assert llm.settings.api_base.startswith("http://127.0.0.1:")
    assert reply.text.strip() and reply.completion_tokens > 0 and reply.prompt_tokens > 0
    assert reply.cost_usd == 0.0
    assert "def" in reply.text or "add" in reply.text
    records = [json.loads(x) for x in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert records[-1]["response"] == reply.text and records[-1]["completion_tokens"] == reply.completion_tokens
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
