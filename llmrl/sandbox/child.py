"""What runs in the forked child that executes LLM-written code, and nothing else: harden the
process, build the policy (or the Feedback class), then answer observations with actions over
the channel until the evaluator closes it.

The child holds no environment, no reward function and no score: those live in the trusted
evaluator process (`llmrl.sandbox.evaluator`), out of this process's reach. Whatever the policy
does to this process (patching gymnasium, numpy or sys.modules, walking the garbage collector,
mutating its observation) changes only its own copy of the world. Time limits are enforced from
outside too: the evaluator stops waiting and has the child killed, so no code here can swallow
them."""
from __future__ import annotations

import io
import os
import pickle
import random
import resource
import signal
import sys
import traceback
from typing import Any

import numpy as np

from llmrl.sandbox import interfaces, seccomp
from llmrl.sandbox.actions import InvalidAction, build_space, encoder
from llmrl.sandbox.protocol import EPISODE, ERROR, JOB, READY, SUMMARY, Channel, ChannelClosed, ObservationCodec


def harden(limits: dict[str, Any], scratch: str, out_fd: int) -> dict[str, Any]:
    """rlimits, seccomp, output capture, scratch as cwd and home. Returns what could not be applied."""
    notes = {}
    os.chdir(scratch)
    os.environ.update(HOME=scratch, TMPDIR=scratch)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = sys.stdout
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long writes fail with EFBIG instead of killing
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
    elif isinstance(exc, OSError) and exc.errno in (13, 30):
        message += " (only the working directory, a private scratch directory, and /tmp are writable)"
    return {"kind": kind, "message": message, "traceback": tb}


class NoClass(Exception):
    pass


def _find_class(namespace: dict[str, Any], name: str | None) -> type:
    import inspect

    if name and inspect.isclass(namespace.get(name)):
        return namespace[name]
    candidates = [v for v in namespace.values() if inspect.isclass(v) and v.__module__ == "policy_module" and hasattr(v, "act")]
    if len(candidates) >= 1:
        return candidates[-1]
    raise NoClass(f"no class {name or ''} with an act(self, obs) method was defined; define `class {name or 'Policy'}` "
                  f"with act(self, obs)")


def _feedback_class(namespace: dict[str, Any]) -> type:
    if not callable(namespace.get("Feedback")):
        raise NoClass("no class Feedback was defined; define `class Feedback` with summarize_trajectory(self, traj)")
    return namespace["Feedback"]


def _load(source: str, source_name: str, module: str, where: str, pick) -> tuple[Any, dict[str, Any] | None]:
    """(object, None) or (None, error) for LLM code defining a class that `pick` finds."""
    namespace: dict[str, Any] = {"__name__": module}
    try:
        code = compile(source, source_name, "exec")
    except SyntaxError as exc:
        return None, {"kind": "syntax", "message": f"SyntaxError: {exc.msg} (line {exc.lineno})",
                      "traceback": f"line {exc.lineno}: {(exc.text or '').rstrip()}"}
    try:
        exec(code, namespace)
        return pick(namespace)(), None
    except NoClass as exc:
        return None, {"kind": "no_class", "message": str(exc), "traceback": ""}
    except BaseException as exc:  # noqa: BLE001 - any failure of LLM code is reported, not raised
        return None, describe_exception(exc, where, source_name)


def serve_policy(job: dict[str, Any], chan: Channel, notes: dict[str, Any], wrap) -> None:
    """Build the policy once, then act on every observation until the channel closes (the
    object persists across episodes, so a policy may learn online)."""
    source_name = "<policy>"
    policy, error = _load(job["policy_source"], source_name, "policy_module", "the policy's module or __init__",
                          lambda ns: _find_class(ns, job.get("class_name")))
    if error is not None:
        chan.send_json(ERROR, error)
        return
    chan.send_json(READY, {"notes": notes})
    encode = encoder(build_space(job["action_space"]))
    decode = ObservationCodec.decoder(job.get("obs_meta"))
    episode, step = 0, 0
    recv, send = chan.recv, chan.send
    while True:
        try:
            kind, payload = recv()
        except ChannelClosed:
            return
        if kind == EPISODE:
            episode, step = episode + 1, 0
            continue
        step += 1
        obs = wrap(decode(kind, payload))
        try:
            frame = encode(policy.act(obs))
        except InvalidAction as exc:
            chan.send_json(ERROR, {"kind": "invalid_action", "message": f"invalid action at step {step - 1} of episode "
                                   f"{episode}: {exc}", "traceback": ""})
            return
        except BaseException as exc:  # noqa: BLE001
            chan.send_json(ERROR, describe_exception(exc, f"act() at step {step - 1} of episode {episode}", source_name))
            return
        send(*frame)


def serve_feedback(job: dict[str, Any], chan: Channel, notes: dict[str, Any], wrap) -> None:
    """Summaries of the evaluator's trajectories (copies: nothing done to them goes back). As in the
    reference, a trajectory is the list of observation objects the policy saw before each step."""
    source_name = "<feedback>"
    feedback, error = _load(job["feedback_source"], source_name, "feedback_module", "the Feedback class", _feedback_class)
    if error is not None:
        chan.send_json(ERROR, error)
        return
    chan.send_json(READY, {"notes": notes})
    for traj in job["trajectories"]:
        view = [wrap(o) for o in traj]  # the observations the policy saw before each step, in order
        try:
            text = str(feedback.summarize_trajectory(view))
        except BaseException as exc:  # noqa: BLE001
            chan.send_json(ERROR, describe_exception(exc, "Feedback.summarize_trajectory", source_name))
            return
        chan.send_json(SUMMARY, text[: int(job["max_summary_chars"])])


def main(down_fd: int, up_fd: int, out_fd: int, scratch: str, our_class: type) -> None:
    """Entry point in the freshly forked child (the warm parent closed every other descriptor)."""
    chan = Channel(down_fd, up_fd)
    try:
        kind, payload = chan.recv()
        if kind != JOB:
            return
        job = pickle.loads(payload)  # from the trusted evaluator
        if job.get("spin_s"):  # a core of its own: wait for observations without sleeping (see protocol.Channel)
            os.set_blocking(down_fd, False)
            chan.spin_s = float(job["spin_s"])
        notes = harden(job["limits"], scratch, out_fd)
        random.seed(job["rng_seed"])
        np.random.seed(job["rng_seed"] % 2**32)
        observation_class, importable = interfaces.observation_factory(job, our_class)
        interfaces.install(importable)  # `from observations import X` and the reference's imports resolve here
        if job["kind"] == "policy":
            serve_policy(job, chan, notes, observation_class)
        else:
            serve_feedback(job, chan, notes, observation_class)
    except ChannelClosed:
        pass
    except BaseException as exc:  # noqa: BLE001 - reported, and the evaluator decides
        try:
            chan.send_json(ERROR, {"kind": "crash", "message": f"sandbox child failed: {type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc()[-2000:]})
        except BaseException:  # noqa: BLE001
            pass
