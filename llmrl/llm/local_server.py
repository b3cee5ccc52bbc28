"""Runs llama.cpp's own HTTP server (`llama-server`, built by `make setup` from the llama.cpp
source that llama-cpp-python 0.3.36 vendors) on loopback for the lifetime of a run: started
before any environment work, waited for until it answers, stopped when the run ends, on Ctrl-C,
on an exception, and (through the kernel's parent-death signal) even when the run is killed.

Parallel slots with continuous batching decode several replies together; a request for n
replies of one prompt processes the prompt once and copies its state to n slots. Threads follow
the cores that are free when the server starts: llama.cpp's threads spin-wait for each other, so
one thread on a core that another process is using slows every token down several times."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from llmrl.errors import ConfigError

from llmrl.procs import die_with_parent

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per poll while the server starts


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a SLURM allocation), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs; niced work is not busy: it yields to the server's threads."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0.0] * 8)[:8]
    return user + system + irq + softirq + steal, sum(fields[:8])


def busy_cores(window_s: float = 0.5) -> float:
    """How many cores other work at normal priority keeps busy, measured over `window_s`."""
    b0, t0 = _cpu_times()
    time.sleep(window_s)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(t1 - t0, 1e-9) * (os.cpu_count() or 1)


def free_cores(window_s: float = 0.5) -> int:
    """Available cores minus those kept busy (at normal priority) by other processes; at least 1."""
    cores = available_cores()
    try:
        busy = busy_cores(window_s)
    except OSError:
        return cores
    return max(1, min(cores, int(cores - busy + 0.5)))


def auto_slots(n_ctx: int, cores: int) -> int:
    """Slots when llm.server.slots is null: up to 10 (PromptPO's candidates per round), 4 per core
    (more than that only queues on a CPU), and at most 64k tokens of KV cache in all."""
    return max(1, min(10, 4 * cores, 65536 // max(n_ctx, 1)))


def find_binary(binary: str | None) -> str:
    """llm.server.binary, else llama-server beside this Python (where `make setup` puts it), else on PATH."""
    if binary:
        path = shutil.which(binary) or (binary if Path(binary).is_file() else None)
        if path is None:
            raise ConfigError(f"llm.server.binary={binary!r} is not an executable file")
        return path
    beside = Path(sys.executable).parent / "llama-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("llama-server")
    if found is None:
        raise ConfigError("llm=local needs llama.cpp's llama-server: run `make setup` (it builds it once, about 5 minutes), "
                          "or set llm.server.binary to one you have")
    return found


class LocalModelServer:
    def __init__(self, model_path: Path, model_alias: str, host: str = "127.0.0.1", port: int = 0,
                 n_ctx: int = 8192, n_threads: int | None = None, startup_timeout_s: float = 180.0,
                 log_path: Path | None = None, extra_args: list[str] | None = None, slots: int | None = None,
                 binary: str | None = None) -> None:
        self.model_path = Path(model_path)
        self.model_alias = model_alias
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        if n_threads is not None and int(n_threads) < 1:
            raise ConfigError(f"llm.server.n_threads={n_threads} must be >= 1, or null (the free cores)")
        if slots is not None and int(slots) < 1:
            raise ConfigError(f"llm.server.slots={slots} must be >= 1, or null (from the cores and the context size)")
        self.n_threads = int(n_threads) if n_threads is not None else None
        self.slots = int(slots) if slots is not None else auto_slots(n_ctx, available_cores())
        self.binary = binary
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        # n_ctx is each slot's window; the unified KV cache holds all slots' (and lets n replies share a prompt)
        return [find_binary(self.binary), "--model", str(self.model_path), "--alias", self.model_alias,
                "--host", self.host, "--port", str(self.port), "--ctx-size", str(self.n_ctx * self.slots),
                "--parallel", str(self.slots), "--kv-unified", "--cont-batching",
                "--threads", str(self.threads), "--threads-batch", str(self.threads), "--no-webui", *self.extra_args]

    def start(self) -> "LocalModelServer":
        self.threads = self.n_threads or free_cores()
        cmd = self.command()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        log.info("starting local model server (%d slots, %d threads of %d available cores): %s", self.slots, self.threads,
                 available_cores(), " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent(signal.SIGKILL))
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = Path(self.log_path).read_text()[-2000:] if self.log_path else ""
                raise RuntimeError(f"the local model server exited with code {self.proc.returncode} while starting: {tail}")
            try:
                if httpx.get(f"{self.api_base}/models", timeout=2.0).status_code == 200:
                    log.info("local model server answers at %s", self.api_base)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the local model server did not answer within {self.startup_timeout_s:.0f}s "
                           f"(raise llm.server.startup_timeout_s)")

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the served model's tokenizer (llama-server's /tokenize)."""
        answer = httpx.post(f"http://{self.host}:{self.port}/tokenize", json={"content": text}, timeout=30.0)
        answer.raise_for_status()
        return len(answer.json()["tokens"])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "LocalModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
