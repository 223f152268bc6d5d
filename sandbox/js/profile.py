"""What the OS layers allow the Deno worker (:func:`js_profile`, a
:class:`~bollard.sandbox.isolation.profile.Profile`): the syscalls V8 and tokio were
measured to need on top of the Python worker's, with arguments checked where a call
could reach another process, and the few paths Landlock lets it read and execute.

The launcher (:mod:`.launcher`) hands it to :func:`bollard.sandbox.isolation.isolate`
before it ``execve``\\ s Deno.
"""

from __future__ import annotations

import os
from typing import Literal

from ..isolation.profile import (
    ALLOWED_SYSCALLS,
    SCMP_CMP_EQ,
    SCMP_CMP_MASKED_EQ,
    SELF_PID,
    ArgRule,
    Profile,
)

# What Deno (V8 jitless, tokio) was measured to need on top (strace -f over the JS sandbox
# tests): file look-ups confined by Landlock to the binary, its libraries and the worker
# script; epoll and eventfd of its event loop; thread set-up. Calls that could reach
# another process are in JS_ARG_RULES, allowed only with the arguments given there.
# fmt: off
JS_EXTRA_SYSCALLS = (
    "execve", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "openat", "open",
    "stat", "lstat", "newfstatat", "statx", "readlink", "readlinkat", "access", "faccessat",
    "faccessat2", "getdents64", "fcntl", "pread64", "poll", "ppoll", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "pipe2",
    "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sysinfo", "nanosleep",
    "clock_nanosleep", "membarrier", "pkey_alloc", "pkey_free", "pkey_mprotect", "getppid",
    # on its own socketpair only (socket, connect, bind, accept stay refused): Rust's
    # UnixStream reads and writes with them (signal-hook's wake-up pair)
    "recvfrom", "sendto", "recvmsg", "sendmsg",
)
# fmt: on

CLONE_THREAD = 0x00010000
AF_UNIX = 1
PR_SET_NAME, PR_GET_NAME, PR_SET_VMA = 15, 16, 0x53564D41
TCGETS, FIONBIO, FIOCLEX = 0x5401, 0x5421, 0x5451

# fmt: off
JS_ARG_RULES: tuple[ArgRule, ...] = (
    ("clone", ((0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD),)),  # threads, never processes
    ("prlimit64", ((0, SCMP_CMP_EQ, 0, 0), (2, SCMP_CMP_EQ, 0, 0))),  # read its own limits only
    ("tgkill", ((0, SCMP_CMP_EQ, SELF_PID, 0),)),  # abort() signals itself only
    ("prctl", ((0, SCMP_CMP_EQ, PR_SET_NAME, 0),)),
    ("prctl", ((0, SCMP_CMP_EQ, PR_GET_NAME, 0),)),
    ("prctl", ((0, SCMP_CMP_EQ, PR_SET_VMA, 0),)),
    ("socketpair", ((0, SCMP_CMP_EQ, AF_UNIX, 0),)),  # its event loop's wake-up pair
    ("ioctl", ((1, SCMP_CMP_EQ, TCGETS, 0),)),  # isatty()
    ("ioctl", ((1, SCMP_CMP_EQ, FIONBIO, 0),)),
    ("ioctl", ((1, SCMP_CMP_EQ, FIOCLEX, 0),)),
)
# fmt: on

# Shared libraries the dynamic loader maps into Deno after execve.
SYSTEM_LIBRARY_PATHS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache")
# Deno seeds its random generators from /dev/urandom as well as getrandom(2).
SYSTEM_DEVICE_PATHS = ("/dev/urandom",)


def elf_interpreter(path: str) -> str | None:
    """The dynamic loader named by an ELF64 executable's ``PT_INTERP`` (the kernel opens it
    for execution too, so Landlock must allow executing it), or ``None``."""
    try:
        with open(path, "rb") as elf:
            head = elf.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[0x20:0x28], order)
            entsize = int.from_bytes(head[0x36:0x38], order)
            count = int.from_bytes(head[0x38:0x3A], order)
            elf.seek(phoff)
            table = elf.read(entsize * count)
            for i in range(count):
                entry = table[i * entsize : (i + 1) * entsize]
                if int.from_bytes(entry[0:4], order) == 3:  # PT_INTERP
                    offset = int.from_bytes(entry[8:16], order)
                    size = int.from_bytes(entry[32:40], order)
                    elf.seek(offset)
                    return elf.read(size).rstrip(b"\0").decode()
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    return None


def js_profile(deno: str, worker_script: str) -> Profile:
    """The profile of a Deno worker running ``worker_script`` with the binary ``deno``."""
    loader = elf_interpreter(deno)
    return Profile(
        "js",
        syscalls=ALLOWED_SYSCALLS + JS_EXTRA_SYSCALLS,
        arg_rules=JS_ARG_RULES,
        # Its own /proc/<pid> (the same process after execve): Rust's stack-overflow guard
        # reads /proc/self/maps, and Deno panics when it cannot.
        landlock_read=(
            deno,
            worker_script,
            *SYSTEM_LIBRARY_PATHS,
            *SYSTEM_DEVICE_PATHS,
            f"/proc/{os.getpid()}",
        ),
        landlock_execute=(deno, *([loader] if loader else [])),
        memory_limit="data",
        max_tasks=32,
        cwd="/",
    )
