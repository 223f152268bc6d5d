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
   (:data:`~.profile.ALLOWED_SYSCALLS`, what a running worker was measured to need with strace
   over the sandbox test suite, plus the memory, signal and clock calls CPython and
   glibc make on other paths): every other syscall fails with ``EPERM`` (``clone3``
   with ``ENOSYS``), among them sockets, exec, process creation, ptrace, namespaces,
   mounts, ``kill``/``tgkill``, ``sched_set*``, ``setpriority``, ``ioprio_set``,
   ``prlimit64`` and every path lookup (``openat``, ``stat``, ``newfstatat``,
   ``statx``...), so host files cannot even be stat()ed.

Costs are a few syscalls (research/restrictedpython.md §3).

A :class:`~.profile.Profile` says what differs per worker kind: :data:`~.profile.PYTHON_PROFILE`
(above) and :func:`bollard.sandbox.js.profile.js_profile` for the Deno worker
(:mod:`bollard.sandbox.js`), whose launcher applies
the same layers and then ``execve``\ s Deno. V8 reserves terabytes of address space, so
its memory cap is ``RLIMIT_DATA`` (writable private memory, with ``--jitless`` no code
range) instead of ``RLIMIT_AS``; it runs a few threads (``clone`` only with
``CLONE_THREAD``, ``RLIMIT_NPROC`` a small number under its own uid); Landlock lets it
read only the Deno binary, the worker script and the system's shared libraries and
execute only the Deno binary; the seccomp allowlist adds what Deno was measured to need
(path look-ups, which Landlock then confines; epoll; thread set-up), with arguments
checked where a call could reach another process (``prlimit64``, ``tgkill``,
``prctl``, ``socketpair``, ``ioctl``).

The modules, one layer each: :mod:`.posix` (descriptors, working directory, namespaces,
rlimits, uid, ``prctl``), :mod:`.landlock`, :mod:`.seccomp`; :mod:`.profile` the
:class:`~.profile.Profile` type and the Python worker's. This module applies them in order
(:func:`isolate`) and arms the per-execution CPU timer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from . import landlock, posix, seccomp
from .posix import PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, UNPRIVILEGED_ID
from .profile import PYTHON_PROFILE, Profile

__all__ = ["PYTHON_PROFILE", "UNPRIVILEGED_ID", "Profile", "isolate", "start_cpu_timer", "stop_cpu_timer"]


def _layer(layers: dict[str, bool | str], name: str, step: Callable[[], bool | str | None]) -> None:
    try:
        result = step()
        layers[name] = True if result is None else result
    except Exception as exc:  # a missing layer is reported, not fatal
        layers[name] = posix.unavailable(exc)


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
    what the worker kind may do (:data:`PYTHON_PROFILE`,
    :func:`~bollard.sandbox.js.profile.js_profile`: there ``memory_bytes`` is the whole
    ``RLIMIT_DATA``).
    Irreversible: call it once, before any connector source is read.
    """
    libc = posix.libc()
    libseccomp = seccomp.libseccomp()
    layers: dict[str, bool | str] = {"process": True}
    _layer(layers, "closed_fds", lambda: posix.close_fds(keep_fds))
    _layer(layers, "empty_environment", os.environ.clear)
    _layer(layers, "empty_cwd", lambda: posix.empty_cwd(profile.cwd))
    _layer(layers, "network_namespace", lambda: posix.network_namespace(libc))
    _layer(layers, "rlimits", lambda: posix.set_limits(memory_bytes, cpu_budget_s, profile))
    _layer(layers, "unprivileged_uid", lambda: posix.drop_privileges(uid))
    _layer(layers, "no_new_privs", lambda: posix.prctl(libc, PR_SET_NO_NEW_PRIVS, 1))
    _layer(layers, "not_dumpable", lambda: posix.prctl(libc, PR_SET_DUMPABLE, 0))
    _layer(layers, "landlock", lambda: landlock.restrict(libc, profile))
    _layer(layers, "seccomp", lambda: seccomp.load_filter(libseccomp, profile))
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
