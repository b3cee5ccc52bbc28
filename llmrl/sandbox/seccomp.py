"""A seccomp filter for the process that runs LLM-written code: no new processes (fork, vfork,
clone without CLONE_THREAD), no exec, no sockets other than AF_UNIX, no ptrace/mount/unshare.
It needs no privileges (PR_SET_NO_NEW_PRIVS first) and works with or without bubblewrap, so a
fork bomb, a shell or a network call fails at the first system call with EPERM, which the
policy sees as an ordinary Python exception.

The program is written as classic BPF by hand (x86_64 only); elsewhere it is not installed and
the sandbox reports that."""
from __future__ import annotations

import ctypes
import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
LD_ABS_W, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16
CLONE_THREAD = 0x00010000
AF_UNIX = 1

# x86_64 system call numbers
SYS = {"socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "ptrace": 101, "mount": 165,
       "umount2": 166, "unshare": 272, "execveat": 322, "setns": 308, "clone3": 435, "pivot_root": 155,
       "chroot": 161, "bpf": 321, "process_vm_writev": 311, "kexec_load": 246, "init_module": 175}
DENIED = ("fork", "vfork", "execve", "execveat", "ptrace", "mount", "umount2", "unshare", "setns", "pivot_root",
          "chroot", "bpf", "process_vm_writev", "kexec_load", "init_module")


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program() -> bytes:
    p = [_ins(LD_ABS_W, OFF_ARCH), _ins(JEQ_K, AUDIT_ARCH_X86_64, jt=1, jf=0), _ins(RET_K, RET_KILL_PROCESS),
         _ins(LD_ABS_W, OFF_NR)]
    for name in DENIED:
        p += [_ins(JEQ_K, SYS[name], jt=0, jf=1), _ins(RET_K, RET_ERRNO | errno.EPERM)]
    # clone3 hides its flags behind a pointer: ENOSYS makes glibc fall back to clone, checked below.
    p += [_ins(JEQ_K, SYS["clone3"], jt=0, jf=1), _ins(RET_K, RET_ERRNO | errno.ENOSYS)]
    # clone: threads (CLONE_THREAD) are allowed, new processes are not.
    p += [_ins(JEQ_K, SYS["clone"], jt=0, jf=4), _ins(LD_ABS_W, OFF_ARG0), _ins(JSET_K, CLONE_THREAD, jt=0, jf=1),
          _ins(RET_K, RET_ALLOW), _ins(RET_K, RET_ERRNO | errno.EPERM)]
    # socket: only AF_UNIX (the accumulator still holds the syscall number here).
    p += [_ins(JEQ_K, SYS["socket"], jt=0, jf=4), _ins(LD_ABS_W, OFF_ARG0), _ins(JEQ_K, AF_UNIX, jt=0, jf=1),
          _ins(RET_K, RET_ALLOW), _ins(RET_K, RET_ERRNO | errno.EPERM)]
    p.append(_ins(RET_K, RET_ALLOW))
    return b"".join(p)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def supported() -> bool:
    return platform.system() == "Linux" and platform.machine() == "x86_64"


def install() -> None:
    """Apply the filter to the calling process (irreversibly). Raises OSError on failure."""
    if not supported():
        raise OSError(f"seccomp filter is written for Linux x86_64, not {platform.system()} {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    code = program()
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
