"""The host side of the sandbox: a pool of warm parents (one per worker), each under
bubblewrap when it works here, or as plain processes with the same hardening otherwise.

bubblewrap gives every warm parent and its children: a read-only view of the file system
except a private scratch directory, no network (an empty network namespace), its own PID, IPC
and UTS namespaces, no capabilities, an environment holding only what is set here (no API
keys, no tokens), and death with the run. The per-child rlimits and seccomp filter apply in
both modes; without bubblewrap the file system and network namespace protections are missing,
which is said loudly once per run and recorded in the summary."""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrl.errors import ConfigError
from llmrl.procs import die_with_parent

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Single-threaded numerics inside the sandbox: thread pools would only contend on few cores.
SANDBOX_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MUJOCO_GL": "disable"}


@dataclass
class SandboxSettings:
    """`sandbox:` in conf/config.yaml."""

    backend: str = "auto"            # auto | bwrap | process
    require_namespaces: bool = False
    workers: int | None = None
    act_timeout_s: float = 1.0
    init_timeout_s: float = 10.0
    episode_timeout_s: float = 300.0
    job_timeout_s: float = 900.0
    cpu_s: int = 900
    memory_mb: int = 2048
    max_output_kb: int = 1024
    returns: str = "described"       # described: returns from the env description's reward source | env: the env's reward

    def limits(self) -> dict[str, Any]:
        return {"cpu_s": self.cpu_s, "memory_mb": self.memory_mb, "max_output_kb": self.max_output_kb,
                "job_timeout_s": self.job_timeout_s}


def _bwrap_works(bwrap: str) -> str | None:
    """None if bubblewrap can create the namespaces here, else why not."""
    try:
        proc = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
                               "--cap-drop", "ALL", "--die-with-parent", "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit code {proc.returncode}")


class Sandbox:
    """`with Sandbox(settings, scratch) as sb: sb.run_many(jobs)`."""

    def __init__(self, settings: SandboxSettings, scratch_root: Path) -> None:
        self.settings = settings
        self.scratch_root = Path(scratch_root)
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        self.workers = int(settings.workers or os.cpu_count() or 1)
        self.mode, self.mode_reason = self._choose_mode()
        self._idle: queue.Queue[_Zygote] = queue.Queue()
        self._all: list[_Zygote] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")

    def _choose_mode(self) -> tuple[str, str]:
        if self.settings.returns not in ("described", "env"):
            raise ConfigError(f"sandbox.returns={self.settings.returns!r}: choose described or env")
        backend = self.settings.backend
        if backend not in ("auto", "bwrap", "process"):
            raise ConfigError(f"sandbox.backend={backend!r}: choose auto, bwrap or process")
        if backend == "process":
            if self.settings.require_namespaces:
                raise ConfigError("sandbox.backend=process contradicts sandbox.require_namespaces=true")
            return "process", "sandbox.backend=process"
        bwrap = shutil.which("bwrap")
        problem = "bwrap is not installed (Debian: apt-get install bubblewrap)" if bwrap is None else _bwrap_works(bwrap)
        if problem is None:
            return "bwrap", "bubblewrap namespaces"
        if backend == "bwrap" or self.settings.require_namespaces:
            raise ConfigError(f"the sandbox needs bubblewrap namespaces, but {problem}; install bubblewrap and allow "
                              f"unprivileged user namespaces, or set sandbox.require_namespaces=false to fall back")
        log.warning("SANDBOX WITHOUT NAMESPACES: %s. LLM-written code runs as plain processes with rlimits, a seccomp "
                    "filter, a scrubbed environment and a scratch directory, but it can read and write your files. "
                    "Set sandbox.require_namespaces=true to refuse this.", problem)
        return "process", problem

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.mode_reason, "workers": self.workers}

    def __enter__(self) -> "Sandbox":
        for _ in range(self.workers):
            z = _Zygote(self)
            self._all.append(z)
            self._idle.put(z)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for z in self._all:
            z.stop()

    def warm(self, env: dict[str, Any]) -> None:
        """Build the environment in every warm parent now, so no evaluation pays for it."""
        jobs = [{"warm_only": True, "env": env} for _ in range(self.workers)]
        list(self._pool.map(self.run, jobs))

    def job(self, env: dict[str, Any], policy_source: str, seeds: list[int], class_name: str | None = None,
            feedback_source: str | None = None) -> dict[str, Any]:
        s = self.settings
        return {"env": env, "policy_source": policy_source, "class_name": class_name, "seeds": list(seeds),
                "feedback_source": feedback_source, "returns": s.returns, "act_timeout_s": s.act_timeout_s,
                "init_timeout_s": s.init_timeout_s,
                "episode_timeout_s": s.episode_timeout_s, "limits": s.limits()}

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        zygote = self._idle.get()
        try:
            return zygote.run(job)
        finally:
            self._idle.put(zygote)

    def run_many(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Evaluate jobs in parallel, one per worker at a time; results in order."""
        return list(self._pool.map(self.run, jobs))


class _Zygote:
    """One warm parent process and the pipe to it; restarted if it dies."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.scratch = Path(tempfile.mkdtemp(prefix="worker-", dir=sandbox.scratch_root))
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _command(self) -> tuple[list[str], dict[str, str]]:
        python = [sys.executable, "-m", "llmrl.sandbox.zygote", str(self.scratch)]
        env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": str(self.scratch),
               "PYTHONPATH": str(PROJECT_ROOT), **SANDBOX_ENV}
        if self.sandbox.mode != "bwrap":
            return python, env
        cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        # /tmp is replaced by an empty tmpfs: bind back what the sandbox needs that lives there.
        needed = {Path(sys.prefix), Path(sys.base_prefix), PROJECT_ROOT, *map(Path, filter(None, sys.path))}
        for path in sorted(needed):
            if str(path).startswith("/tmp/") and path.exists():
                cmd += ["--ro-bind", str(path), str(path)]
        cmd += ["--bind", str(self.scratch), str(self.scratch), "--unshare-all", "--cap-drop", "ALL",
                "--die-with-parent", "--new-session", "--clearenv", "--chdir", str(self.scratch)]
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        return cmd + python, {}

    def start(self) -> None:
        cmd, env = self._command()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env if env else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                     cwd=self.scratch, preexec_fn=die_with_parent(), text=True, bufsize=1)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                self.start()
            job = {**job, "id": uuid.uuid4().hex}
            try:
                self.proc.stdin.write(json.dumps(job) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                code = self.proc.poll()
                self.proc = None
                return {"ok": False, "steps": 0, "error": {"kind": "crash", "message": f"the sandbox's warm parent died "
                        f"(exit code {code}); it is restarted for the next evaluation", "traceback": ""}}
            return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
