"""What runs in the forked child that executes LLM-written code: harden the process, load the
policy, roll it out, and describe every failure precisely enough for the LLM to fix it.

The child inherits the warm parent's imports and its prepared environment (copy-on-write), so
its fixed cost is a fork plus a reset. Everything here runs after `harden()`; anything the
policy does is confined by the rlimits and the seccomp filter (and, under bubblewrap, by the
namespaces of the whole sandbox)."""
from __future__ import annotations

import io
import math
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

import numpy as np

from llmrl.sandbox import seccomp


class SandboxTimeout(BaseException):
    """Raised by the alarm; a BaseException so that `except Exception` in policy code cannot
    swallow it."""


class InvalidAction(Exception):
    pass


def _on_alarm(signum, frame):
    raise SandboxTimeout()


def harden(limits: dict[str, Any], scratch: str, steps_cell) -> dict[str, Any]:
    """rlimits, seccomp, output capture, scratch cwd. Returns what could not be applied."""
    notes = {}
    os.chdir(scratch)
    out = os.open(os.path.join(scratch, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = sys.stdout
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long writes fail with EFBIG instead of killing
    signal.signal(signal.SIGALRM, _on_alarm)
    vm_now = _vm_size_bytes()
    memory = int(limits["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (vm_now + memory, vm_now + memory))
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    fsize = int(limits["max_output_kb"]) * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        seccomp.install()
    except OSError as exc:
        notes["seccomp"] = f"not installed: {exc}"
    return notes


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def describe_exception(exc: BaseException, where: str, source_name: str) -> dict[str, Any]:
    """The exception and the traceback lines that are in the LLM's code (not ours)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source_name]
    tb = "".join(traceback.format_list(frames)) if frames else ""
    kind = "exception"
    message = f"{type(exc).__name__} in {where}: {exc}"
    if isinstance(exc, MemoryError):
        kind, message = "memory", f"MemoryError in {where}: the policy tried to use more memory than the sandbox allows"
    elif isinstance(exc, PermissionError) and exc.errno == 1:
        message += " (the sandbox forbids new processes, programs and network sockets)"
    elif isinstance(exc, OSError) and exc.errno == 27:
        kind, message = "output", f"{where} wrote more output than the sandbox allows ({type(exc).__name__}: {exc})"
    elif isinstance(exc, OSError) and exc.errno == 30:
        message += " (the file system is read-only outside the policy's scratch directory)"
    return {"kind": kind, "message": message, "traceback": tb}


def with_timeout(seconds: float, fn, *args):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def check_action(action: Any, space) -> Any:
    """The action as the env wants it, or InvalidAction naming the problem and the space."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        value = action
        if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.integer):
            value = value.reshape(()).item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InvalidAction(f"act() returned {action!r} of type {type(action).__name__}; expected an int in "
                                f"[{space.start}, {space.start + space.n - 1}] ({space})")
        if not space.start <= int(value) < space.start + space.n:
            raise InvalidAction(f"act() returned {int(value)}, outside [{space.start}, {space.start + space.n - 1}] ({space})")
        return int(value)
    if isinstance(space, gym.spaces.Box):
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidAction(f"act() returned {type(action).__name__} {str(action)[:80]}, not numbers; expected a numpy "
                                f"array of shape {space.shape} in [{space.low.min():g}, {space.high.max():g}] ({space})") from None
        if arr.shape != space.shape:
            if arr.size == int(np.prod(space.shape)) and arr.size > 0:
                arr = arr.reshape(space.shape)
            else:
                raise InvalidAction(f"act() returned shape {arr.shape}; expected shape {space.shape} ({space})")
        if not np.all(np.isfinite(arr)):
            raise InvalidAction(f"act() returned non-finite values (NaN or inf) {arr.tolist()}; expected finite numbers in "
                                f"[{space.low.min():g}, {space.high.max():g}] ({space})")
        if np.any(arr < space.low - 1e-6) or np.any(arr > space.high + 1e-6):
            raise InvalidAction(f"act() returned {np.round(arr, 4).tolist()}, outside the bounds low={space.low.tolist()} "
                                f"high={space.high.tolist()}; clip the action ({space})")
        return np.clip(arr, space.low, space.high).astype(space.dtype)
    return action


def run_job(job: dict[str, Any], env, description, steps_cell) -> dict[str, Any]:
    """Instantiate the policy once and roll it out for the job's episodes (the object persists,
    so a policy may learn online). Steps are published to `steps_cell` as they happen, so a
    child killed from outside still reports what it spent."""
    source_name = "<policy>"
    result: dict[str, Any] = {"ok": False, "error": None, "returns": [], "env_returns": [], "successes": [],
                              "lengths": [], "steps": 0, "feedback": None, "feedback_error": None}
    namespace: dict[str, Any] = {"__name__": "policy_module"}
    try:
        code = compile(job["policy_source"], source_name, "exec")
    except SyntaxError as exc:
        result["error"] = {"kind": "syntax", "message": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                           "traceback": f"line {exc.lineno}: {(exc.text or '').rstrip()}"}
        return result
    try:
        with_timeout(job["init_timeout_s"], exec, code, namespace)
        cls = _find_class(namespace, job.get("class_name"))
        policy = with_timeout(job["init_timeout_s"], cls)
    except SandboxTimeout:
        result["error"] = {"kind": "timeout", "message": f"defining or constructing the policy took longer than "
                           f"{job['init_timeout_s']} s (is there an infinite loop in __init__?)", "traceback": ""}
        return result
    except LookupError as exc:
        result["error"] = {"kind": "no_class", "message": str(exc), "traceback": ""}
        return result
    except BaseException as exc:  # noqa: BLE001 - any failure of LLM code is reported, not raised
        result["error"] = describe_exception(exc, "the policy's module or __init__", source_name)
        return result

    wrap = description.observation_class
    reward_fn = description.reward_fn
    success_key = job["env"].get("success_key")
    feedback = _load_feedback(job.get("feedback_source"), result)
    trajectories = []
    for seed in job["seeds"]:
        obs, info = env.reset(seed=int(seed))
        total = env_total = 0.0
        success = 0.0
        length = 0
        traj = {"observations": [wrap(obs)], "actions": [], "rewards": []}
        start = time.monotonic()
        done = False
        try:
            while not done:
                wrapped = traj["observations"][-1]
                action = check_action(with_timeout(job["act_timeout_s"], policy.act, wrapped), env.action_space)
                next_obs, env_reward, terminated, truncated, info = env.step(action)
                steps_cell[0] += 1
                length += 1
                next_wrapped = wrap(next_obs)
                total += float(reward_fn(wrapped, action, next_wrapped, info))
                env_total += float(env_reward)
                if success_key is not None:
                    success = max(success, float(info.get(success_key, 0.0)))
                traj["observations"].append(next_wrapped)
                traj["actions"].append(action)
                traj["rewards"].append(float(env_reward))
                done = terminated or truncated
                if time.monotonic() - start > job["episode_timeout_s"]:
                    raise SandboxTimeout("episode")
        except SandboxTimeout as exc:
            what = "an episode" if exc.args == ("episode",) else "one act() call"
            limit = job["episode_timeout_s"] if exc.args == ("episode",) else job["act_timeout_s"]
            result["error"] = {"kind": "timeout", "message": f"{what} took longer than {limit} s (step {length} of episode "
                               f"{len(result['returns']) + 1}); make act() faster or avoid infinite loops", "traceback": ""}
            break
        except InvalidAction as exc:
            result["error"] = {"kind": "invalid_action", "message": f"invalid action at step {length} of episode "
                               f"{len(result['returns']) + 1}: {exc}", "traceback": ""}
            break
        except BaseException as exc:  # noqa: BLE001
            result["error"] = describe_exception(exc, f"act() at step {length} of episode {len(result['returns']) + 1}", source_name)
            break
        result["returns"].append(total)
        result["env_returns"].append(env_total)
        result["lengths"].append(length)
        if success_key is not None:
            result["successes"].append(success)
        trajectories.append(traj)
    result["steps"] = int(steps_cell[0])
    if success_key is None:
        result["successes"] = None
    if feedback is not None and trajectories:
        result["feedback"] = _summaries(feedback, trajectories, job, result)
    result["ok"] = result["error"] is None
    return result


def _find_class(namespace: dict[str, Any], name: str | None) -> type:
    import inspect

    if name and inspect.isclass(namespace.get(name)):
        return namespace[name]
    candidates = [v for v in namespace.values() if inspect.isclass(v) and v.__module__ == "policy_module" and hasattr(v, "act")]
    if len(candidates) >= 1:
        return candidates[-1]
    raise LookupError(f"no class {name or ''} with an act(self, obs) method was defined; define `class {name or 'Policy'}` "
                      f"with act(self, obs)")


def _load_feedback(source: str | None, result: dict[str, Any]):
    if not source:
        return None
    namespace: dict[str, Any] = {"__name__": "feedback_module"}
    try:
        exec(compile(source, "<feedback>", "exec"), namespace)
        return namespace["Feedback"]()
    except BaseException as exc:  # noqa: BLE001
        result["feedback_error"] = describe_exception(exc, "the Feedback class", "<feedback>")
        return None


def _summaries(feedback, trajectories, job, result) -> list[str] | None:
    out = []
    for traj in trajectories:
        try:
            text = with_timeout(job["init_timeout_s"], feedback.summarize_trajectory, traj)
            out.append(str(text)[:4000])
        except SandboxTimeout:
            result["feedback_error"] = {"kind": "timeout", "message": f"summarize_trajectory took longer than "
                                        f"{job['init_timeout_s']} s", "traceback": ""}
            return None
        except BaseException as exc:  # noqa: BLE001
            result["feedback_error"] = describe_exception(exc, "Feedback.summarize_trajectory", "<feedback>")
            return None
    return out


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
