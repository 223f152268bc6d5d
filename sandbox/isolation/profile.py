"""What the OS layers allow one kind of worker: the :class:`Profile` type, the vocabulary of
its seccomp argument rules, and the Python worker's profile (:data:`PYTHON_PROFILE`).

The Deno worker's profile is :func:`bollard.sandbox.js.profile.js_profile`; the layers
that apply a profile are :mod:`.posix` (rlimits, working directory), :mod:`.landlock` and
:mod:`.seccomp`.
"""

from __future__ import annotations

from dataclasses import dataclass

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

# libseccomp comparison operators (seccomp.h)
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
SELF_PID = -1  # a placeholder in an argument rule: replaced by the worker's own pid

# (syscall, ((argument index, operator, a, b), ...)): the call is allowed when all hold.
ArgRule = tuple[str, tuple[tuple[int, int, int, int], ...]]


@dataclass(frozen=True)
class Profile:
    """What the layers allow one kind of worker.

    - ``syscalls``: the seccomp allowlist; ``arg_rules`` calls allowed only with the
      arguments given (:data:`~bollard.sandbox.js.profile.JS_ARG_RULES`);
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
