"""A seccomp filter for the process that runs LLM-written code: no new processes (fork, vfork,
clone without CLONE_THREAD), no exec, no sockets other than AF_UNIX, no ptrace, no mounts or
namespaces, no access to other processes' memory, no kernel-facing interfaces a policy has no
use for (bpf, perf, io_uring, keyrings, userfaultfd, module loading). It needs no privileges
(PR_SET_NO_NEW_PRIVS first) and works with or without bubblewrap, so a fork bomb, a shell or a
network call fails at its first system call with EPERM, which the policy sees as an ordinary
Python exception.

Only the native x86_64 ABI passes: a system call made through another architecture's entry
(i386 `int 0x80`) or through the x32 ABI (numbers with bit 30 set, which the x86_64 entry also
accepts on kernels built with x32 support) is refused by the filter itself, so no rule above can
be side-stepped with another syscall table.

The program is written as classic BPF by hand (x86_64 only); elsewhere it is not installed and
the sandbox reports that."""
from __future__ import annotations

import ctypes
import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
LD_ABS_W, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16
CLONE_THREAD = 0x00010000
AF_UNIX = 1

# x86_64 system call numbers
SYS = {"socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "ptrace": 101, "mount": 165,
       "umount2": 166, "unshare": 272, "execveat": 322, "setns": 308, "clone3": 435, "pivot_root": 155,
       "chroot": 161, "bpf": 321, "process_vm_readv": 310, "process_vm_writev": 311, "kexec_load": 246,
       "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
       "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
       "io_uring_register": 427, "add_key": 248, "request_key": 249, "keyctl": 250, "open_by_handle_at": 304,
       "name_to_handle_at": 303, "pidfd_getfd": 438, "fsopen": 430, "fsmount": 432, "move_mount": 429,
       "open_tree": 428, "mount_setattr": 442, "personality": 135, "setuid": 105, "setgid": 106,
       "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119, "setgroups": 116}
DENIED = tuple(name for name in SYS if name not in ("socket", "clone", "clone3"))
HOT = (0, 1, 7)  # read, write, poll


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program() -> bytes:
    p = [_ins(LD_ABS_W, OFF_ARCH), _ins(JEQ_K, AUDIT_ARCH_X86_64, jt=1, jf=0), _ins(RET_K, RET_KILL_PROCESS),
         _ins(LD_ABS_W, OFF_NR),
         # the x32 ABI shares the x86_64 arch tag; its numbers carry bit 30
         _ins(JGE_K, X32_SYSCALL_BIT, jt=0, jf=1), _ins(RET_K, RET_ERRNO | errno.EPERM)]
    for nr in HOT:  # the calls of every step (the pipes to the evaluator) skip the list below
        p += [_ins(JEQ_K, nr, jt=0, jf=1), _ins(RET_K, RET_ALLOW)]
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
