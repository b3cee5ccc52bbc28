"""The host side of the sandbox: a pool of workers, one per core. Each worker is a trusted
evaluator process (`llmrl.sandbox.evaluator`: the env, the reward, the score) paired with a
sandboxed warm parent (`llmrl.sandbox.zygote`, under bubblewrap when it works here) that forks a
fresh, hardened child for every piece of LLM-written code. See `llmrl.sandbox.launch` for what
the sandbox sees and README's sandbox section for what is guaranteed."""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmrl.errors import ConfigError
from llmrl.procs import die_with_parent
from llmrl.sandbox import launch

log = logging.getLogger(__name__)
PROJECT_ROOT = launch.PROJECT_ROOT


@dataclass
class PromptCaps:
    """Everything generated code prints or returns that can reach a prompt is cut to these sizes."""

    message_chars: int = 1000      # an error message (exception text, invalid action)
    traceback_chars: int = 2000    # the traceback lines of the LLM's own code
    output_chars: int = 2000       # what the code printed (kept in the candidate's JSON; the repair prompt shows it)
    summary_chars: int = 1000      # one Feedback summary of one episode


PLACEMENTS = ("auto", "shared", "paired", "free")


def place(placement: str, workers: int, cpus: list[int]) -> list[tuple[int | None, int | None, bool]]:
    """(evaluator core, policy core, spin) per worker. `shared`: both processes of a worker on
    one core, handing over by blocking reads (~2 us per switch there, against tens of microseconds
    to wake a process on another core of a VM); `paired`: two cores per worker, the waiting side
    spins; `auto`: paired when there are two cores per worker, else shared; `free`: no pinning."""
    if placement == "auto":
        placement = "paired" if len(cpus) >= 2 * workers else "shared"
    if placement == "free":
        return [(None, None, False)] * workers
    if placement == "shared":
        return [(cpus[k % len(cpus)], cpus[k % len(cpus)], False) for k in range(workers)]
    return [(cpus[2 * k % len(cpus)], cpus[(2 * k + 1) % len(cpus)], True) for k in range(workers)]


@dataclass
class SandboxSettings:
    """`sandbox:` in conf/config.yaml (documented there)."""

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
    scratch_mb: int = 256
    uid: int = 65534
    placement: str = "auto"          # auto | shared | paired | free
    spin_us: int = 1000
    returns: str = "described"       # described: returns from the env description's reward source | env: the env's reward
    caps: PromptCaps = field(default_factory=PromptCaps)

    def __post_init__(self) -> None:
        if isinstance(self.caps, dict):
            unknown = set(self.caps) - set(PromptCaps.__dataclass_fields__)
            if unknown:
                raise ConfigError(f"sandbox.caps: unknown key(s) {sorted(unknown)}; valid: {sorted(PromptCaps.__dataclass_fields__)}")
            self.caps = PromptCaps(**self.caps)
        checks = [(self.act_timeout_s, "act_timeout_s"), (self.init_timeout_s, "init_timeout_s"),
                  (self.episode_timeout_s, "episode_timeout_s"), (self.job_timeout_s, "job_timeout_s"),
                  (self.cpu_s, "cpu_s"), (self.memory_mb, "memory_mb"), (self.max_output_kb, "max_output_kb"),
                  (self.scratch_mb, "scratch_mb"), *((v, f"caps.{k}") for k, v in asdict(self.caps).items())]
        for value, key in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"sandbox.{key}={value!r} must be a positive number")
        if self.backend not in ("auto", "bwrap", "process"):
            raise ConfigError(f"sandbox.backend={self.backend!r}: choose auto, bwrap or process")
        if self.returns not in ("described", "env"):
            raise ConfigError(f"sandbox.returns={self.returns!r}: choose described or env")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"sandbox.placement={self.placement!r}: choose one of {', '.join(PLACEMENTS)}")
        if isinstance(self.spin_us, bool) or not isinstance(self.spin_us, int) or self.spin_us < 0:
            raise ConfigError(f"sandbox.spin_us={self.spin_us!r} must be a non-negative integer number of microseconds")
        if isinstance(self.uid, bool) or not isinstance(self.uid, int) or self.uid <= 0:
            raise ConfigError(f"sandbox.uid={self.uid!r} must be a positive integer (the unprivileged uid LLM code runs "
                              f"as when the run is started as root), e.g. sandbox.uid=65534")

    @classmethod
    def from_config(cls, node: Any) -> "SandboxSettings":
        """From the `sandbox:` node of the config; an unknown key is one line naming the valid ones."""
        from omegaconf import DictConfig, OmegaConf

        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"sandbox: unknown key(s) {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def limits(self) -> dict[str, Any]:
        return {"cpu_s": self.cpu_s, "memory_mb": self.memory_mb, "max_output_kb": self.max_output_kb,
                "job_timeout_s": self.job_timeout_s}


def choose_mode(settings: SandboxSettings) -> tuple[str, str]:
    """(bwrap or process, why): bubblewrap where it works, the plain-process fallback (with its
    warning) where it does not and the settings allow it."""
    backend = settings.backend
    if backend == "process":
        if settings.require_namespaces:
            raise ConfigError("sandbox.backend=process contradicts sandbox.require_namespaces=true")
        log.warning(launch.fallback_warning("sandbox.backend=process", settings.uid))
        return "process", "sandbox.backend=process"
    problem = launch.bwrap_problem(settings.scratch_mb)
    if problem is None:
        return "bwrap", "bubblewrap namespaces"
    if backend == "bwrap" or settings.require_namespaces:
        raise ConfigError(f"the sandbox needs bubblewrap namespaces, but {problem}; install bubblewrap and allow "
                          f"unprivileged user namespaces, or set sandbox.require_namespaces=false to fall back")
    log.warning(launch.fallback_warning(problem, settings.uid))
    return "process", problem


class Sandbox:
    """`with Sandbox(settings, workdir) as sb: sb.run_many(jobs)`. `workdir` holds the workers'
    logs (and, without bubblewrap, their scratch directories); nothing of a job stays there."""

    def __init__(self, settings: SandboxSettings, scratch_root: Path) -> None:
        self.settings = settings
        self.scratch_root = Path(scratch_root)
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        self.workers = int(settings.workers or os.cpu_count() or 1)
        self.mode, self.mode_reason = choose_mode(settings)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")
        self.uid: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.mode_reason, "workers": self.workers, "uid": self.uid,
                "placement": [list(p) for p in getattr(self, "placement", [])],
                "scores": "computed by a trusted evaluator process; the policy process only maps observations to actions"}

    def __enter__(self) -> "Sandbox":
        self.placement = place(self.settings.placement, self.workers, sorted(os.sched_getaffinity(0)))
        for cores in self.placement:
            w = _Worker(self, cores)
            self._all.append(w)
            self._idle.put(w)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for w in self._all:
            w.stop()

    def warm(self, env: dict[str, Any]) -> None:
        """Build the environment and start the sandboxed warm parent in every worker now, so no
        evaluation pays for it."""
        jobs = [{"warm_only": True, "env": env} for _ in range(self.workers)]
        for result in self._pool.map(self.run, jobs):
            if result.get("ok") is False:
                raise RuntimeError(f"the sandbox could not start: {result['error']['message']}")
            self.uid = result.get("sandbox_uid", self.uid)

    def job(self, env: dict[str, Any], policy_source: str, seeds: list[int], class_name: str | None = None,
            feedback_source: str | None = None, rng_seed: int = 0, keep_trajectories: bool = False,
            interface: str = "ours") -> dict[str, Any]:
        """One evaluation. `rng_seed` seeds Python's and numpy's global generators in the policy's
        process, so a policy that draws random numbers behaves the same on a replay.
        `feedback_source`: a Feedback class summarising this evaluation's episodes;
        `keep_trajectories`: return them (the observations acted on) for a later `summarize_job`;
        `interface`: ours, or reference (the objects and imports PromptPO's published policies use)."""
        s = self.settings
        if interface not in ("ours", "reference"):
            raise ConfigError(f"interface={interface!r}: choose ours or reference")
        return {"env": env, "policy_source": policy_source, "class_name": class_name, "seeds": list(seeds),
                "feedback_source": feedback_source, "returns": s.returns, "act_timeout_s": s.act_timeout_s,
                "init_timeout_s": s.init_timeout_s, "episode_timeout_s": s.episode_timeout_s, "limits": s.limits(),
                "caps": asdict(s.caps), "rng_seed": int(rng_seed) % 2**63, "keep_trajectories": keep_trajectories,
                "interface": interface}

    def summarize_job(self, env: dict[str, Any], feedback_source: str, trajectories: list, rng_seed: int = 0) -> dict[str, Any]:
        """A Feedback class on trajectories an earlier job returned: no env step is taken."""
        job = self.job(env, "", [], feedback_source=feedback_source, rng_seed=rng_seed)
        return {**job, "summarize": True, "trajectories": trajectories}

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        worker = self._idle.get()
        try:
            return worker.run(job)
        finally:
            self._idle.put(worker)

    def run_many(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Evaluate jobs in parallel, one per worker at a time; results in order."""
        return list(self._pool.map(self.run, jobs))


class _Worker:
    """One evaluator process and the pipe to it; restarted if it dies."""

    def __init__(self, sandbox: Sandbox, cores: tuple[int | None, int | None, bool]) -> None:
        self.sandbox = sandbox
        self.cores = cores
        self.workdir = Path(tempfile.mkdtemp(prefix="worker-", dir=sandbox.scratch_root))
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        s = self.sandbox.settings
        evaluator_cpu, policy_cpu, spin = self.cores
        settings = {"mode": self.sandbox.mode, "uid": s.uid, "scratch_mb": s.scratch_mb, "workdir": str(self.workdir),
                    "evaluator_cpu": evaluator_cpu, "policy_cpu": policy_cpu, "spin_s": s.spin_us * 1e-6 if spin else 0.0}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable")}
        self.proc = subprocess.Popen([sys.executable, "-m", "llmrl.sandbox.evaluator", json.dumps(settings)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.workdir / "evaluator.log", "ab"), env=env, cwd=PROJECT_ROOT,
                                     preexec_fn=die_with_parent(), text=True, bufsize=1)

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
                tail = (self.workdir / "evaluator.log").read_text(errors="replace")[-1500:].strip()
                return {"ok": False, "steps": 0, "error": {"kind": "crash", "message": f"the sandbox's evaluator died "
                        f"(exit code {code}); it is restarted for the next evaluation", "traceback": "", "detail": tail}}
            return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
