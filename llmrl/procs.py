"""Process helpers shared by the parts that start long-lived children (the local model
server, the sandbox's warm parents)."""
from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM):
    """A `preexec_fn`: the kernel sends `sig` to the child when its parent dies, so a killed
    run leaves no orphan behind. Returns the function to pass as preexec_fn."""

    def preexec() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
        except OSError:
            pass

    return preexec
