"""The process-level layers: inherited descriptors, the working directory, network and
IPC namespaces (``unshare(2)``), resource limits, the unprivileged uid and the
``prctl`` flags. Each function applies one layer to the calling process."""

from __future__ import annotations

import ctypes
import os
import resource
import tempfile

from .profile import Profile

CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
UNPRIVILEGED_ID = 65534  # nobody / nogroup
MAX_OPEN_FILES = 8


def libc() -> ctypes.CDLL:
    """The symbols of the running process, libc included (no find_library: it forks)."""
    return ctypes.CDLL(None, use_errno=True)


def unavailable(exc: BaseException) -> str:
    """How a layer that failed with ``exc`` is reported."""
    return f"unavailable: {exc}"


def close_fds(keep_fds: tuple[int, ...]) -> None:
    """Close every inherited descriptor but ``keep_fds``."""
    highest = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    highest = 65536 if highest == resource.RLIM_INFINITY else min(int(highest), 1 << 20)
    start = 0
    for fd in [*sorted(keep_fds), highest]:
        # Never an empty range: CPython 3.11 maps closerange(n, n) onto
        # close_range(n, n - 1), and closerange(0, 0) closes every descriptor.
        if fd > start:
            os.closerange(start, fd)
        start = fd + 1


def empty_cwd(cwd: str | None) -> bool | str:
    """umask 077 and a working directory: ``cwd``, or (``None``) an empty temporary
    directory removed at once (nothing can be created in a deleted directory)."""
    os.umask(0o077)
    if cwd is not None:
        os.chdir(cwd)
        return f"{cwd} (nothing there is readable: Landlock)"
    directory = tempfile.mkdtemp(prefix="bollard-worker-")
    os.chdir(directory)
    os.rmdir(directory)
    return True


def _unshare(lib: ctypes.CDLL, flags: int) -> None:
    if lib.unshare(ctypes.c_int(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def network_namespace(lib: ctypes.CDLL) -> bool | str:
    """Enter new network and IPC namespaces; as non-root through a user namespace."""
    if os.geteuid() == 0:
        candidates = (CLONE_NEWNET | CLONE_NEWIPC, CLONE_NEWNET)
    else:
        candidates = (CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC, CLONE_NEWUSER | CLONE_NEWNET)
    last: OSError | None = None
    for flags in candidates:
        try:
            _unshare(lib, flags)
            return True
        except OSError as exc:
            last = exc
    return unavailable(last) if last else False


def _vm_size_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def set_limits(memory_bytes: int, cpu_budget_s: int, profile: Profile) -> None:
    """Hard and soft rlimits: no core, no file writes, few descriptors, the memory limit
    (``RLIMIT_AS`` above the current size, or the whole ``RLIMIT_DATA``), the lifetime CPU
    budget in seconds, and ``RLIMIT_NPROC``."""
    if profile.memory_limit == "data":
        memory = (resource.RLIMIT_DATA, memory_bytes)  # the caller adds the runtime's baseline
    else:
        memory = (resource.RLIMIT_AS, _vm_size_bytes() + memory_bytes)
    limits = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES if profile.max_tasks == 0 else 4 * MAX_OPEN_FILES),
        memory,
        (resource.RLIMIT_CPU, cpu_budget_s),
    ]
    # Threads count against RLIMIT_NPROC too: a worker that needs some gets a few, and
    # only under its own uid (as root); otherwise the uid is shared and the limit stays.
    if profile.max_tasks == 0 or os.geteuid() == 0:
        limits.append((resource.RLIMIT_NPROC, profile.max_tasks))
    for limit, value in limits:
        resource.setrlimit(limit, (value, value))


def drop_privileges(uid: int) -> bool | str:
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


def prctl(lib: ctypes.CDLL, option: int, value: int) -> None:
    """``prctl(option, value)``; ``OSError`` when the kernel refuses."""
    if lib.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
