"""Operating-system isolation of a worker process (DESIGN §4.2). Runs in the worker,
before it reads any connector source.

:func:`isolate` applies, in order, and reports which layers are in force (each one
degrades gracefully where the host cannot provide it):

1. close inherited file descriptors except the pipe (0, 1) and stderr;
2. empty environment, umask 077, working directory an empty temporary directory
   that is removed at once (nothing can be created in a deleted directory);
3. its own network namespace (no interfaces, so no network even for code that
   escapes the interpreter) and IPC namespace: ``unshare(2)`` through ctypes (no
   ``os.unshare`` before Python 3.12); as root directly, otherwise with a user
   namespace;
4. resource limits, hard and soft: ``RLIMIT_AS`` (baseline + the memory limit),
   ``RLIMIT_CPU`` (a lifetime budget; each execution gets a precise
   ``ITIMER_PROF`` timer, see :func:`start_cpu_timer`), ``RLIMIT_FSIZE`` 0,
   ``RLIMIT_NOFILE`` small, ``RLIMIT_CORE`` 0, ``RLIMIT_NPROC`` 0 (effective once
   the uid is not root);
5. as root: drop to an unprivileged uid/gid after the namespaces exist: the one the
   pool chose for this worker from its ``uid_range`` (each live worker has its own,
   so workers cannot signal, trace or re-prioritise each other even without
   seccomp), or 65534 where the kernel does not know that uid;
6. ``PR_SET_NO_NEW_PRIVS`` and ``PR_SET_DUMPABLE`` 0 (no ptrace or /proc reads by
   other processes of the same uid, e.g. other workers);
7. Landlock: no filesystem access at all, no TCP, no signals out of the worker
   (what the kernel's Landlock ABI supports);
8. a seccomp filter (libseccomp through ctypes) that is an allowlist
   (:data:`ALLOWED_SYSCALLS`, what a running worker was measured to need with strace
   over the sandbox test suite, plus the memory, signal and clock calls CPython and
   glibc make on other paths): every other syscall fails with ``EPERM`` (``clone3``
   with ``ENOSYS``), among them sockets, exec, process creation, ptrace, namespaces,
   mounts, ``kill``/``tgkill``, ``sched_set*``, ``setpriority``, ``ioprio_set``,
   ``prlimit64`` and every path lookup (``openat``, ``stat``, ``newfstatat``,
   ``statx``...), so host files cannot even be stat()ed.

Costs are a few syscalls (research/restrictedpython.md §3).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import tempfile
from collections.abc import Callable

CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
UNPRIVILEGED_ID = 65534  # nobody / nogroup
MAX_OPEN_FILES = 8

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000

# The only syscalls a worker may make once isolated. Measured (strace -f over the
# sandbox tests): read, write, writev, mmap, munmap, mremap, brk, setitimer,
# rt_sigaction, dup2, close, getpid, getrandom, exit_group; the rest are calls CPython
# and glibc make on other paths (allocation, signals, clocks, exit) that reach nothing
# outside the process. Only fd-based calls: no path is looked up.
# fmt: off
ALLOWED_SYSCALLS = (
    "read", "readv", "write", "writev", "close", "dup", "dup2", "dup3", "fstat", "lseek",
    "mmap", "munmap", "mremap", "mprotect", "madvise", "brk", "futex",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "setitimer",
    "getitimer", "clock_gettime", "clock_getres", "gettimeofday", "time", "times",
    "getrusage", "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getcwd",
    "uname", "getrandom", "sched_yield", "restart_syscall", "exit", "exit_group",
)
# fmt: on


def _libc() -> ctypes.CDLL:
    # The symbols of the running process, libc included (no find_library: it forks).
    return ctypes.CDLL(None, use_errno=True)


def _libseccomp() -> ctypes.CDLL | None:
    for name in ("libseccomp.so.2", "libseccomp.so"):
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
    return None


def _error(exc: BaseException) -> str:
    return f"unavailable: {exc}"


def _unshare(libc: ctypes.CDLL, flags: int) -> None:
    if libc.unshare(ctypes.c_int(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _network_namespace(libc: ctypes.CDLL) -> bool | str:
    """Enter new network and IPC namespaces; as non-root through a user namespace."""
    if os.geteuid() == 0:
        candidates = (CLONE_NEWNET | CLONE_NEWIPC, CLONE_NEWNET)
    else:
        candidates = (CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC, CLONE_NEWUSER | CLONE_NEWNET)
    last: OSError | None = None
    for flags in candidates:
        try:
            _unshare(libc, flags)
            return True
        except OSError as exc:
            last = exc
    return _error(last) if last else False


def _vm_size_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _set_limits(memory_bytes: int, cpu_budget_s: int) -> None:
    address_space = _vm_size_bytes() + memory_bytes
    for limit, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_CPU, cpu_budget_s),
    ):
        resource.setrlimit(limit, (value, value))


def _drop_privileges(uid: int) -> bool | str:
    """As root, become ``uid``/gid ``uid`` with no groups (65534 where the kernel does
    not map ``uid``, e.g. in a user namespace of 65536 ids); returns the uid as text."""
    if os.geteuid() != 0:
        return f"not root (uid {os.geteuid()})"
    os.setgroups([])
    try:
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        if uid == UNPRIVILEGED_ID:
            raise
        os.setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
        os.setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
        return f"{UNPRIVILEGED_ID} (uid {uid} unavailable: {exc.strerror})"
    return str(uid)


def _prctl(libc: ctypes.CDLL, option: int, value: int) -> None:
    if (
        libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        != 0
    ):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _seccomp(lib: ctypes.CDLL | None) -> bool | str:
    """Load the allowlist seccomp filter through libseccomp (default: ``EPERM``)."""
    if lib is None:
        return "unavailable: libseccomp not found"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    filter_ctx = lib.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
    if not filter_ctx:
        return "unavailable: seccomp_init failed"
    try:
        # clone3 must look absent (ENOSYS) so libc falls back to clone, which fails.
        rules = [(name, SCMP_ACT_ALLOW) for name in ALLOWED_SYSCALLS] + [
            ("clone3", SCMP_ACT_ERRNO | errno.ENOSYS)
        ]
        for syscall, action in rules:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                continue  # not on this architecture
            if lib.seccomp_rule_add(filter_ctx, action, number, 0) != 0:
                return f"unavailable: cannot add a rule for {syscall}"
        if lib.seccomp_load(filter_ctx) != 0:
            return "unavailable: seccomp_load failed"
    finally:
        lib.seccomp_release(filter_ctx)
    return True


# Landlock (Linux 5.13+): the same syscall numbers on every architecture.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _landlock(libc: ctypes.CDLL) -> bool | str:
    """Deny every filesystem access (and, where the kernel's ABI allows, TCP bind and
    connect, abstract unix sockets and signals to processes outside the worker): a
    ruleset that handles all rights and grants none. Everything the worker needs was
    imported and read before this point."""
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi < 1:
        return f"unavailable: {os.strerror(ctypes.get_errno())}"
    # Access rights known to each ABI version (linux/landlock.h).
    fs_bits = {1: 13, 2: 14, 3: 15}.get(abi, 16)
    attr = _LandlockRulesetAttr(
        handled_access_fs=(1 << fs_bits) - 1,
        handled_access_net=0b11 if abi >= 4 else 0,
        scoped=0b11 if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if ruleset < 0:
        return f"unavailable: {os.strerror(ctypes.get_errno())}"
    try:
        if (
            libc.syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0))
            != 0
        ):
            return f"unavailable: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    return f"abi {abi}"


def _layer(layers: dict[str, bool | str], name: str, step: Callable[[], bool | str | None]) -> None:
    try:
        result = step()
        layers[name] = True if result is None else result
    except Exception as exc:  # a missing layer is reported, not fatal
        layers[name] = _error(exc)


def isolate(
    *, memory_bytes: int, cpu_budget_s: int, keep_fds: tuple[int, ...] = (0, 1, 2), uid: int = UNPRIVILEGED_ID
) -> dict[str, bool | str]:
    """Isolate the calling process (the worker) and return the layers in force:
    ``{"process": True, "closed_fds": ..., "empty_environment": ..., "empty_cwd": ...,
    "network_namespace": ..., "rlimits": ..., "unprivileged_uid": "<uid>" | reason,
    "no_new_privs": ..., "landlock": "abi <n>", "seccomp": ...}``; each value is ``True`` (or the uid), or a
    string saying why the layer is missing.

    ``memory_bytes`` is added to the current address-space size for ``RLIMIT_AS``;
    ``cpu_budget_s`` is the worker's lifetime CPU budget (``RLIMIT_CPU``, seconds);
    ``uid`` the unprivileged uid (and gid) to become when running as root.
    Irreversible: call it once, before any connector source is read.
    """
    libc = _libc()
    libseccomp = _libseccomp()
    layers: dict[str, bool | str] = {"process": True}

    def close_fds() -> None:
        highest = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        highest = 65536 if highest == resource.RLIM_INFINITY else min(int(highest), 1 << 20)
        start = 0
        for fd in [*sorted(keep_fds), highest]:
            # Never an empty range: CPython 3.11 maps closerange(n, n) onto
            # close_range(n, n - 1), and closerange(0, 0) closes every descriptor.
            if fd > start:
                os.closerange(start, fd)
            start = fd + 1

    def empty_cwd() -> None:
        os.umask(0o077)
        directory = tempfile.mkdtemp(prefix="bollard-worker-")
        os.chdir(directory)
        os.rmdir(directory)

    _layer(layers, "closed_fds", close_fds)
    _layer(layers, "empty_environment", os.environ.clear)
    _layer(layers, "empty_cwd", empty_cwd)
    _layer(layers, "network_namespace", lambda: _network_namespace(libc))
    _layer(layers, "rlimits", lambda: _set_limits(memory_bytes, cpu_budget_s))
    _layer(layers, "unprivileged_uid", lambda: _drop_privileges(uid))
    _layer(layers, "no_new_privs", lambda: _prctl(libc, PR_SET_NO_NEW_PRIVS, 1))
    _layer(layers, "not_dumpable", lambda: _prctl(libc, PR_SET_DUMPABLE, 0))
    _layer(layers, "landlock", lambda: _landlock(libc))
    _layer(layers, "seccomp", lambda: _seccomp(libseccomp))
    signal.signal(signal.SIGPROF, signal.SIG_DFL)  # the CPU timer's signal terminates
    return layers


def start_cpu_timer(cpu_time_ms: int) -> None:
    """Arm the per-execution CPU limit: ``SIGPROF`` (default action: terminate) after
    ``cpu_time_ms`` ms of process CPU time. ``ITIMER_PROF`` has ms precision where
    ``RLIMIT_CPU`` has seconds, and needs no ``setrlimit`` (denied by seccomp)."""
    signal.setitimer(signal.ITIMER_PROF, cpu_time_ms / 1000.0)


def stop_cpu_timer() -> None:
    """Disarm the per-execution CPU timer."""
    signal.setitimer(signal.ITIMER_PROF, 0)
