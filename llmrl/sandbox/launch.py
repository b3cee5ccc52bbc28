"""How the sandbox's warm parent is started: the file system it sees, the namespaces it lives in,
the uid it runs as, and the environment it gets.

Under bubblewrap it sees, read-only: /usr (with the /bin, /lib, /lib64, /sbin links), the dynamic
loader's cache, Python's installation and the virtual environment (the installed packages), and
the project's `llmrl` package; writable: a size-limited tmpfs at /tmp that holds each child's
scratch directory and is emptied after every evaluation; /dev/null, /dev/zero, /dev/urandom; a
/proc of its own PID namespace. Nothing else exists in there: not $HOME, not the run directories,
not the LLM cache or the model store, not /etc, not /root beyond the path to a Python installed
under it. It has no network (an empty network namespace), its own PID, IPC and UTS namespaces and
no capabilities. Started as root, bubblewrap runs without a user namespace and the warm parent
gives up root for `uid` (real, effective and saved) before it reads a job; started as a normal
user, bubblewrap maps that user and nothing changes hands.

Without bubblewrap the warm parent is a plain process: it still drops root, gets a scrubbed
environment, HOME in its scratch directory, rlimits and the seccomp filter, but every file the
unprivileged uid may read stays readable, and other processes stay visible; `fallback_warning`
says so."""
from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = PROJECT_ROOT / "llmrl"
SCRATCH_IN_SANDBOX = "/tmp"
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
# Single-threaded numerics inside the sandbox: thread pools would only contend on few cores.
# PYTHONHASHSEED pins set and dict-of-str iteration order, so a replayed policy behaves the same.
SANDBOX_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "MUJOCO_GL": "disable"}


def python_command(control_fd: int, scratch_root: str, drop_uid: int) -> list[str]:
    # -s: no user site; -P: no working directory (nor script directory) on sys.path; -B: no bytecode
    return [sys.executable, "-s", "-P", "-B", "-m", "llmrl.sandbox.zygote", str(control_fd), scratch_root, str(drop_uid)]


def environment(home: str) -> dict[str, str]:
    return {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": home, "TMPDIR": home, **SANDBOX_ENV}


def _read_only_roots() -> list[Path]:
    """Directories the sandbox needs, outermost only (a path inside another is bound with it)."""
    wanted = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix), PACKAGE_DIR,
              Path(os.path.realpath(sys.executable)).parent.parent}
    wanted |= {Path(p) for p in site.getsitepackages()}
    wanted = {p.resolve() for p in wanted if p.exists()}
    roots = sorted(p for p in wanted if not any(q != p and q in p.parents for q in wanted))
    return [p for p in roots if not (p == Path("/usr") or Path("/usr") in p.parents)]


def bwrap_args(scratch_mb: int, as_root: bool) -> list[str]:
    """bubblewrap's arguments up to (not including) the command."""
    args = ["--ro-bind", "/usr", "/usr"]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    made: set[Path] = {Path("/"), Path("/usr"), Path("/tmp")}
    for root in _read_only_roots():
        for parent in reversed(root.parents):  # ancestors traversable by the unprivileged uid
            if parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(root), str(root)]
        made.add(root)
    for dev in DEVICES:
        args += ["--dev-bind", dev, dev]
    args += ["--proc", "/proc", "--perms", "01777", "--size", str(int(scratch_mb) * 2**20), "--tmpfs", SCRATCH_IN_SANDBOX]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--new-session", "--clearenv", "--chdir", "/"]
    if as_root:  # no user namespace: the warm parent itself becomes the unprivileged uid
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    for key, value in environment(SCRATCH_IN_SANDBOX).items():
        args += ["--setenv", key, value]
    return args


@functools.lru_cache(maxsize=None)
def bwrap_problem(scratch_mb: int) -> str | None:
    """None if bubblewrap can start Python with this view here, else why not (asked once per process)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    cmd = [bwrap, *bwrap_args(scratch_mb, os.getuid() == 0), sys.executable, "-s", "-P", "-B", "-c",
           "import llmrl.sandbox.protocol"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if proc.returncode == 0 else (proc.stderr.strip()[-500:] or f"exit code {proc.returncode}")


def fallback_warning(reason: str, drop_uid: int) -> str:
    who = (f"as uid {drop_uid} (dropped from root)" if os.getuid() == 0 else
           f"as your own user (uid {os.getuid()}), with HOME moved to its scratch directory")
    return (f"SANDBOX WITHOUT NAMESPACES ({reason}). LLM-written code runs as plain processes {who}, with rlimits, "
            f"a seccomp filter (no processes, no exec, no network sockets), a scrubbed environment and a scratch "
            f"directory, and its score is still computed out of its reach. What it cannot hide: every file that "
            f"uid may read (world-readable files anywhere{'' if os.getuid() == 0 else ', and all of your own files such as ~/.netrc'}), "
            f"the machine's other processes, and /tmp. Install bubblewrap, or set sandbox.require_namespaces=true to "
            f"refuse this.")
