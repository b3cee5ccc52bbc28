"""Process helpers shared by the parts that start long-lived children (the local model
server, the sandbox's warm parents)."""
from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the kernel sends SIGTERM to the child when its parent dies, so a
    killed run leaves no orphan behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
