"""The warm parent of the sandbox: started once per worker (inside bubblewrap when available),
it imports the heavy modules and builds each environment once, then forks a fresh, hardened
child per evaluation. Jobs arrive as JSON lines on stdin; results leave as JSON lines on stdout.

    python -m llmrl.sandbox.zygote SCRATCH_ROOT
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback
from multiprocessing.sharedctypes import RawArray
from typing import Any

import gymnasium  # noqa: F401  (imported here once, inherited by every child)
import numpy  # noqa: F401

from llmrl.envs.description import load_description
from llmrl.envs.spec import EnvSpec

_ENVS: dict[str, Any] = {}


def _env_for(spec: dict[str, Any]):
    key = json.dumps(spec, sort_keys=True)
    if key not in _ENVS:
        env_spec = EnvSpec(**spec)
        _ENVS[key] = (env_spec.make(), env_spec.describe())
        _ENVS[key][1].observation_class, _ENVS[key][1].reward_fn  # load both before any fork
    return _ENVS[key]


def _run_child(job: dict[str, Any], env, description, scratch: str, steps_cell, result_fd: int) -> None:
    from llmrl.sandbox.worker import harden, run_job

    os.setsid()  # its own process group, so the whole group can be killed
    try:
        notes = harden(job["limits"], scratch)
        result = run_job(job, env, description, steps_cell)
        result["notes"] = notes
    except BaseException as exc:  # noqa: BLE001
        result = {"ok": False, "steps": int(steps_cell[0]),
                  "error": {"kind": "crash", "message": f"sandbox worker failed: {type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()[-2000:]}}
    payload = json.dumps(result, default=_jsonable).encode()
    with os.fdopen(result_fd, "wb") as f:
        f.write(payload)
    os._exit(0)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def _read_output(scratch: str, limit: int = 2000) -> str:
    try:
        with open(os.path.join(scratch, "output.txt"), "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


def handle(job: dict[str, Any], scratch_root: str) -> dict[str, Any]:
    started = time.monotonic()
    if job.get("warm_only"):
        _env_for(job["env"])
        return {"ok": True, "warm": True}
    env, description = _env_for(job["env"])
    scratch = tempfile.mkdtemp(prefix="job-", dir=scratch_root)
    steps_cell = RawArray("q", 1)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _run_child(job, env, description, scratch, steps_cell, write_fd)
    os.close(write_fd)
    deadline = started + float(job["limits"]["job_timeout_s"])
    chunks: list[bytes] = []
    while True:  # the pipe reaches EOF exactly when the child exits (it cannot fork)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill_group(pid)
            break
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if ready:
            data = os.read(read_fd, 1 << 16)
            if not data:
                break
            chunks.append(data)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    _kill_group(pid)
    output = _read_output(scratch)
    try:
        result = json.loads(b"".join(chunks))
    except json.JSONDecodeError:  # nothing, or a torn write: the child died before reporting
        result = {"ok": False, "steps": int(steps_cell[0]), "error": _death_message(status, job, started)}
    result["output"] = output
    result["wall_s"] = round(time.monotonic() - started, 4)
    return result


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _death_message(status: int | None, job: dict[str, Any], started: float) -> dict[str, Any]:
    limits = job["limits"]
    elapsed = time.monotonic() - started
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return {"kind": "cpu", "message": f"the policy used more than {limits['cpu_s']} s of CPU time", "traceback": ""}
        if sig == signal.SIGKILL and elapsed >= float(limits["job_timeout_s"]):
            return {"kind": "timeout", "message": f"the evaluation exceeded its wall-clock limit of {limits['job_timeout_s']} s "
                    f"and was killed (a loop that never returns to Python, or a very slow policy)", "traceback": ""}
        return {"kind": "crash", "message": f"the policy process died from signal {signal.Signals(sig).name} "
                f"(e.g. a crash in native code or exhausted memory)", "traceback": ""}
    return {"kind": "crash", "message": "the policy process exited without reporting a result (did the code call "
            "os._exit or sys.exit?)", "traceback": ""}


def main() -> None:
    scratch_root = sys.argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when this process ends
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            result = handle(job, scratch_root)
        except BaseException as exc:  # noqa: BLE001 - a broken job must not take the warm parent down
            result = {"ok": False, "steps": 0, "error": {"kind": "crash", "message": f"sandbox failed to run the job: "
                      f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}}
        result["id"] = job.get("id")
        sys.stdout.write(json.dumps(result, default=_jsonable) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
