r"""Operating-system isolation of a worker process (DESIGN §4.2). Runs in the worker,
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

A :class:`Profile` says what differs per worker kind: :data:`PYTHON_PROFILE` (above) and
:data:`JS_PROFILE` for the Deno worker (:mod:`bollard.sandbox.js`), whose launcher applies
the same layers and then ``execve``\ s Deno. V8 reserves terabytes of address space, so
its memory cap is ``RLIMIT_DATA`` (writable private memory, with ``--jitless`` no code
range) instead of ``RLIMIT_AS``; it runs a few threads (``clone`` only with
``CLONE_THREAD``, ``RLIMIT_NPROC`` a small number under its own uid); Landlock lets it
read only the Deno binary, the worker script and the system's shared libraries and
execute only the Deno binary; the seccomp allowlist adds what Deno was measured to need
(path look-ups, which Landlock then confines; epoll; thread set-up), with arguments
checked where a call could reach another process (``prlimit64``, ``tgkill``,
``prctl``, ``socketpair``, ``ioctl``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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

# libseccomp comparison operators (seccomp.h)
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
CLONE_THREAD = 0x00010000
AF_UNIX = 1
PR_SET_NAME, PR_GET_NAME, PR_SET_VMA = 15, 16, 0x53564D41
TCGETS, FIONBIO, FIOCLEX = 0x5401, 0x5421, 0x5451
SELF_PID = -1  # a placeholder in an argument rule: replaced by the worker's own pid

# (syscall, ((argument index, operator, a, b), ...)): the call is allowed when all hold.
ArgRule = tuple[str, tuple[tuple[int, int, int, int], ...]]
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


@dataclass(frozen=True)
class Profile:
    """What the layers allow one kind of worker.

    - ``syscalls``: the seccomp allowlist; ``arg_rules`` calls allowed only with the
      arguments given (:data:`JS_ARG_RULES`);
    - ``landlock_read`` / ``landlock_execute``: paths (files or directories) whose files
      may be read / executed; empty means no filesystem access at all;
    - ``memory_limit``: ``"as"`` (``RLIMIT_AS``, the address space) or ``"data"``
      (``RLIMIT_DATA``, writable private memory: for V8, which reserves terabytes of
      address space it never touches);
    - ``max_tasks``: ``RLIMIT_NPROC`` (processes and threads of the worker's uid; 0 means
      no ``fork`` and no threads);
    - ``cwd``: ``None`` for an empty, deleted working directory; else this directory (Deno
      refuses to start without a working directory; Landlock leaves nothing readable there).
    """

    name: str
    syscalls: tuple[str, ...] = ALLOWED_SYSCALLS
    arg_rules: tuple[ArgRule, ...] = ()
    landlock_read: tuple[str, ...] = ()
    landlock_execute: tuple[str, ...] = ()
    memory_limit: str = "as"
    max_tasks: int = 0
    cwd: str | None = None


PYTHON_PROFILE = Profile("python")


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


def _set_limits(memory_bytes: int, cpu_budget_s: int, profile: Profile) -> None:
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


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _seccomp(lib: ctypes.CDLL | None, profile: Profile = PYTHON_PROFILE) -> bool | str:
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
        rules = [(name, SCMP_ACT_ALLOW) for name in profile.syscalls] + [
            ("clone3", SCMP_ACT_ERRNO | errno.ENOSYS)
        ]
        for syscall, action in rules:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                continue  # not on this architecture
            if lib.seccomp_rule_add(filter_ctx, action, number, 0) != 0:
                return f"unavailable: cannot add a rule for {syscall}"
        problem = _arg_rules(lib, filter_ctx, profile.arg_rules)
        if problem:
            return problem
        if lib.seccomp_load(filter_ctx) != 0:
            return "unavailable: seccomp_load failed"
    finally:
        lib.seccomp_release(filter_ctx)
    return True


def _arg_rules(lib: ctypes.CDLL, filter_ctx: int, rules: tuple[ArgRule, ...]) -> str | None:
    """Add the calls allowed only with given arguments; a reason on failure."""
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    pid = os.getpid()
    for syscall, comparisons in rules:
        number = lib.seccomp_syscall_resolve_name(syscall.encode())
        if number < 0:
            continue
        array = (_ArgCmp * len(comparisons))(
            *[_ArgCmp(arg, op, pid if a == SELF_PID else a, b) for arg, op, a, b in comparisons]
        )
        if lib.seccomp_rule_add_array(filter_ctx, SCMP_ACT_ALLOW, number, len(comparisons), array) != 0:
            return f"unavailable: cannot add an argument rule for {syscall}"
    return None


# Landlock (Linux 5.13+): the same syscall numbers on every architecture.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_ACCESS_FS_EXECUTE = 1 << 0
LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
O_PATH = 0o10000000


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # struct landlock_path_beneath_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _landlock_allow(libc: ctypes.CDLL, ruleset: int, paths: tuple[str, ...], access: int) -> None:
    for path in paths:
        try:
            fd = os.open(path, O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # e.g. no /lib64 here
        try:
            rights = (
                access
                if os.path.isdir(path)
                else access & (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE)
            )
            attr = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
            if (
                libc.syscall(
                    ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(attr),
                    ctypes.c_uint32(0),
                )
                != 0
            ):
                raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
        finally:
            os.close(fd)


def _landlock(libc: ctypes.CDLL, profile: Profile = PYTHON_PROFILE) -> bool | str:
    """Deny every filesystem access (and, where the kernel's ABI allows, TCP bind and
    connect, abstract unix sockets and signals to processes outside the worker): a
    ruleset that handles all rights and grants none but the profile's reads and
    executes. Everything the Python worker needs was imported and read before this
    point."""
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
        _landlock_allow(libc, ruleset, profile.landlock_read, LANDLOCK_ACCESS_FS_READ_FILE)
        _landlock_allow(libc, ruleset, profile.landlock_execute, LANDLOCK_ACCESS_FS_EXECUTE)
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
    *,
    memory_bytes: int,
    cpu_budget_s: int,
    keep_fds: tuple[int, ...] = (0, 1, 2),
    uid: int = UNPRIVILEGED_ID,
    profile: Profile = PYTHON_PROFILE,
) -> dict[str, bool | str]:
    """Isolate the calling process (the worker) and return the layers in force:
    ``{"process": True, "closed_fds": ..., "empty_environment": ..., "empty_cwd": ...,
    "network_namespace": ..., "rlimits": ..., "unprivileged_uid": "<uid>" | reason,
    "no_new_privs": ..., "landlock": "abi <n>", "seccomp": ...}``; each value is ``True`` (or the uid), or a
    string saying why the layer is missing.

    ``memory_bytes`` is added to the current address-space size for ``RLIMIT_AS``;
    ``cpu_budget_s`` is the worker's lifetime CPU budget (``RLIMIT_CPU``, seconds);
    ``uid`` the unprivileged uid (and gid) to become when running as root; ``profile``
    what the worker kind may do (:data:`PYTHON_PROFILE`, :func:`js_profile`: there
    ``memory_bytes`` is the whole ``RLIMIT_DATA``).
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

    def empty_cwd() -> bool | str:
        os.umask(0o077)
        if profile.cwd is not None:
            os.chdir(profile.cwd)
            return f"{profile.cwd} (nothing there is readable: Landlock)"
        directory = tempfile.mkdtemp(prefix="bollard-worker-")
        os.chdir(directory)
        os.rmdir(directory)
        return True

    _layer(layers, "closed_fds", close_fds)
    _layer(layers, "empty_environment", os.environ.clear)
    _layer(layers, "empty_cwd", empty_cwd)
    _layer(layers, "network_namespace", lambda: _network_namespace(libc))
    _layer(layers, "rlimits", lambda: _set_limits(memory_bytes, cpu_budget_s, profile))
    _layer(layers, "unprivileged_uid", lambda: _drop_privileges(uid))
    _layer(layers, "no_new_privs", lambda: _prctl(libc, PR_SET_NO_NEW_PRIVS, 1))
    _layer(layers, "not_dumpable", lambda: _prctl(libc, PR_SET_DUMPABLE, 0))
    _layer(layers, "landlock", lambda: _landlock(libc, profile))
    _layer(layers, "seccomp", lambda: _seccomp(libseccomp, profile))
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
