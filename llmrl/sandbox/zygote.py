"""The warm parent inside the sandbox: started once per worker by the evaluator (under bubblewrap
when available), it drops to an unprivileged uid, imports what policies need once, and forks a
fresh child per evaluation. It never runs LLM code itself and reads nothing a child can write:
its working directory is read-only, no writable directory is on its import path, and after
every child it empties the scratch file system, so each evaluation starts from the same state.

Commands arrive on a SOCK_SEQPACKET socket from the evaluator, one JSON document per packet,
with the child's pipe ends attached (SCM_RIGHTS):

    spawn {description, variables}  + fds [down_r, up_w, out]  -> forks; answers {"op": "spawned"}
                                     (or {"op": "refused", "error"} if the description cannot be built)
    kill                                             -> kills the running child
and when the child ends: {"op": "exited", "status": ..., "clean": bool}.

    python -s -P -B -m llmrl.sandbox.zygote CONTROL_FD SCRATCH_ROOT DROP_UID
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import stat
import sys

PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE = 38, 4
# Modules a policy commonly imports, loaded before the warm parent gives up its privileges: in
# the process fallback the Python installation may sit where the unprivileged uid cannot read.
PRELOAD = ("math", "random", "statistics", "collections", "heapq", "itertools", "functools", "bisect", "copy",
           "dataclasses", "typing", "enum", "json", "re", "time", "operator", "abc", "string", "fractions",
           "decimal", "numbers", "array", "queue", "io", "textwrap", "inspect", "traceback", "warnings")


def drop_privileges(uid: int) -> None:
    """Become `uid` for good (real, effective and saved ids, no supplementary groups)."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("sandbox: failed to drop root privileges")


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def wipe(root: str) -> bool:
    """Remove everything under `root` (a child may leave read-only or unlistable directories)."""

    def make_writable_and_retry(function, path, _exc):
        parent = os.path.dirname(path)
        for p in (parent, path):
            try:
                os.chmod(p, stat.S_IRWXU, follow_symlinks=False)
            except OSError:
                pass
        try:
            function(path)
        except OSError:
            pass

    for name in os.listdir(root):
        path = os.path.join(root, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, onerror=make_writable_and_retry)
            else:
                os.unlink(path)
        except OSError:
            pass
    return not os.listdir(root)


def main() -> None:
    control_fd, scratch_root, drop_uid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the evaluator decides when this process ends
    os.chdir("/")
    import gymnasium  # noqa: F401  (imported once here, inherited by every child)
    import numpy  # noqa: F401

    from llmrl.envs.description import load_description
    from llmrl.sandbox import child

    for name in PRELOAD:
        __import__(name)
    if drop_uid >= 0 and os.getuid() == 0:
        drop_privileges(drop_uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # children (same uid) cannot open this process's memory or descriptors
    control = socket.socket(fileno=control_fd)
    control.send(json.dumps({"op": "hello", "uid": os.getuid(), "gid": os.getgid()}).encode())
    observation_classes: dict[str, type] = {}
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 3)
        if not message:
            return
        command = json.loads(message)
        if command["op"] != "spawn" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        name, variables = command["description"], command.get("variables") or {}
        key = json.dumps([name, variables], sort_keys=True)
        if key not in observation_classes:
            try:
                observation_classes[key] = load_description(name, variables).observation_class
            except Exception as exc:  # noqa: BLE001 - our own files; the evaluator reports it with the env's name
                for fd in fds:
                    os.close(fd)
                control.send(json.dumps({"op": "refused", "error": f"the description '{name}' could not be "
                                         f"built: {type(exc).__name__}: {exc}"}).encode())
                continue
        scratch = os.path.join(scratch_root, "job")
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        pid = os.fork()
        if pid == 0:
            os.setsid()
            _close_all_but(fds)  # nothing of the parent's (the control socket above all) stays open
            down, up, out = fds
            try:
                child.main(down, up, out, scratch, observation_classes[key])
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        control.send(b'{"op": "spawned"}')
        status = _supervise(control, pid)
        clean = wipe(scratch_root)
        control.send(json.dumps({"op": "exited", "status": status, "clean": clean}).encode())


def _close_all_but(keep: list[int]) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _supervise(control: socket.socket, pid: int) -> int:
    """Wait for the child to end, killing it when the evaluator says so. Returns its wait status."""
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([control, pidfd], [], [])
            if pidfd in ready:
                return os.waitpid(pid, 0)[1]
            message = control.recv(1 << 16)
            if not message:  # the evaluator is gone: so is this sandbox
                os.kill(pid, signal.SIGKILL)
                os._exit(0)
            if json.loads(message).get("op") == "kill":
                for kill in (os.killpg, os.kill):  # the group, or the child itself if it has none yet
                    try:
                        kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
    finally:
        os.close(pidfd)


if __name__ == "__main__":
    main()
