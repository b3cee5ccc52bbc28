"""Runs llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on loopback for the
lifetime of a run: started before any environment work, waited for until it answers, stopped
when the run ends, on Ctrl-C, on an exception, and (through the kernel's parent-death signal)
even when the run itself is killed."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from llmrl.procs import die_with_parent

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalModelServer:
    def __init__(self, model_path: Path, model_alias: str, host: str = "127.0.0.1", port: int = 0,
                 n_ctx: int = 8192, n_threads: int | None = None, startup_timeout_s: float = 180.0,
                 log_path: Path | None = None, extra_args: list[str] | None = None) -> None:
        self.model_path = Path(model_path)
        self.model_alias = model_alias
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "LocalModelServer":
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "llm=local needs llama-cpp-python[server]; run `make setup` (it builds it once with the right CPU flags)"
            ) from exc
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--model_alias", self.model_alias,
               "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx), *self.extra_args]
        # llama-cpp-python's own default is half the cores, which halves generation speed here.
        threads = self.n_threads or os.cpu_count() or 1
        cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        log.info("starting local model server: %s", " ".join(cmd))
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
