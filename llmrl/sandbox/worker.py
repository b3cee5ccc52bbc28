"""What runs in the forked child that executes LLM-written code: harden the process, load the
policy, roll it out, and describe every failure precisely enough for the LLM to fix it.

The child inherits the warm parent's imports and its prepared environment (copy-on-write), so
its fixed cost is a fork plus a reset. Everything here runs after `harden()`; anything the
policy does is confined by the rlimits and the seccomp filter (and, under bubblewrap, by the
namespaces of the whole sandbox)."""
from __future__ import annotations

import io
import os
import resource
import signal
import sys
import threading
import time
import traceback
from typing import Any

import gymnasium as gym
import numpy as np

from llmrl.sandbox import seccomp


class SandboxTimeout(BaseException):
    """Raised by the alarm; a BaseException so that `except Exception` in policy code cannot
    swallow it."""


class InvalidAction(Exception):
    pass


def _on_alarm(signum, frame):
    raise SandboxTimeout(_WATCH.reason)


class _Watchdog:
    """Wall-clock limits for act() calls and episodes without a system call per step: the hot
    loop only stamps the time an act() starts; a thread compares the stamps with the limits and
    interrupts the main thread with SIGALRM (which raises SandboxTimeout there)."""

    def __init__(self) -> None:
        self.act_started: float | None = None
        self.episode_started: float | None = None
        self.act_limit = self.episode_limit = float("inf")
        self.reason = ""
        self._thread: threading.Thread | None = None

    def start(self, act_limit: float, episode_limit: float) -> None:
        self.act_limit, self.episode_limit = act_limit, episode_limit
        if self._thread is None:
            self._main = threading.main_thread().ident
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(max(0.005, min(0.05, self.act_limit / 10)))
            now = time.monotonic()
            act, episode = self.act_started, self.episode_started
            if act is not None and now - act > self.act_limit:
                self.reason, self.act_started = "act", None
                signal.pthread_kill(self._main, signal.SIGALRM)
            elif episode is not None and now - episode > self.episode_limit:
                self.reason, self.episode_started = "episode", None
                signal.pthread_kill(self._main, signal.SIGALRM)


_WATCH = _Watchdog()


def harden(limits: dict[str, Any], scratch: str) -> dict[str, Any]:
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
    """For the few calls outside the rollout loop (module, __init__, Feedback)."""
    _WATCH.reason = "call"
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def check_action(action: Any, space) -> Any:
    """The action as the env wants it, or InvalidAction naming the problem and the space."""
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
        # One combined test on the hot path (NaN fails both comparisons); details only on failure.
        if not ((arr >= space.low - 1e-6) & (arr <= space.high + 1e-6)).all():
            if not np.all(np.isfinite(arr)):
                raise InvalidAction(f"act() returned non-finite values (NaN or inf) {arr.tolist()}; expected finite numbers "
                                    f"in [{space.low.min():g}, {space.high.max():g}] ({space})")
            raise InvalidAction(f"act() returned {np.round(arr, 4).tolist()}, outside the bounds low={space.low.tolist()} "
                                f"high={space.high.tolist()}; clip the action ({space})")
        return arr.astype(space.dtype, copy=False)
    return action


def make_checker(space):
    """check_action specialised for one space, with a fast path for the common valid case
    (the full check, with its precise messages, runs only when the fast path does not apply)."""
    if isinstance(space, gym.spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n)

        def check(action):
            if type(action) is int and lo <= action < hi:
                return action
            return check_action(action, space)

        return check
    if isinstance(space, gym.spaces.Box):
        low, high, shape, dtype = space.low - 1e-6, space.high + 1e-6, space.shape, space.dtype

        def check_box(action):
            if type(action) is np.ndarray and action.shape == shape and ((action >= low) & (action <= high)).all():
                return action.astype(dtype, copy=False)
            return check_action(action, space)

        return check_box
    return lambda action: check_action(action, space)


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
    _WATCH.start(job["act_timeout_s"], job["episode_timeout_s"])
    steps_total = int(steps_cell[0])
    for seed in job["seeds"]:
        obs, info = env.reset(seed=int(seed))
        total = env_total = 0.0
        success = 0.0
        length = 0
        wrapped = wrap(obs)
        traj = {"observations": [wrapped], "actions": [], "rewards": []}
        keep = feedback is not None  # trajectories are kept only for a Feedback class to read
        described = job.get("returns", "described") == "described"
        done = False
        watch, clock = _WATCH, time.monotonic
        watch.episode_started = clock()
        try:
            check = make_checker(env.action_space)
            while not done:
                watch.act_started = clock()
                raw_action = policy.act(wrapped)
                watch.act_started = None
                action = check(raw_action)
                next_obs, env_reward, terminated, truncated, info = env.step(action)
                length += 1
                if not length & 63:  # published now and then: a child killed from outside still reports its steps
                    steps_cell[0] = steps_total + length
                next_wrapped = wrap(next_obs)
                env_total += env_reward
                total += reward_fn(wrapped, action, next_wrapped, info) if described else env_reward
                if success_key is not None:
                    success = max(success, float(info.get(success_key, 0.0)))
                if keep:
                    traj["observations"].append(next_wrapped)
                    traj["actions"].append(action)
                    traj["rewards"].append(float(env_reward))
                wrapped = next_wrapped
                done = terminated or truncated
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
        finally:
            watch.act_started = watch.episode_started = None
            steps_total += length
            steps_cell[0] = steps_total
        result["returns"].append(float(total))
        result["env_returns"].append(float(env_total))
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

