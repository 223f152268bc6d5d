"""The Deno worker's first program: ``python -m bollard.sandbox.js.launcher MEMORY CPU UID NICE DENO [MODE]``.

Started by the pool like the Python worker (the pipe on stdin/stdout, an empty
environment), it applies the same OS layers (:func:`bollard.sandbox.isolation.isolate`
with :func:`~bollard.sandbox.js.profile.js_profile`) and then replaces itself with Deno
running ``worker.js``; every layer survives ``execve`` (namespaces, rlimits, uid,
no-new-privs, Landlock, the seccomp filter). ``not_dumpable`` does not (the kernel sets
it again for the new program): other workers still cannot ptrace it, having their own
uid, Landlock domain and a seccomp filter without ``ptrace``.

Deno runs with no ``--allow-*`` flag (every permission denied), ``--no-prompt``,
``--no-remote``, ``--no-npm``, ``--no-config``, ``--cached-only``, and V8 with the heap
limit from the memory limit, ``--jitless`` (no writable-executable memory, no code range
to reserve) and ``--disallow-code-generation-from-strings`` (no ``eval``/``Function``).

Argv: ``MEMORY`` = bytes of V8 heap (and, with :data:`BASELINE_BYTES`, of
``RLIMIT_DATA``); ``CPU`` = lifetime CPU budget in seconds; ``UID``; ``NICE`` =
``<nice>,<autogroup nice>`` to lower itself to first
(:func:`bollard.sandbox.priority.lower_self`; Deno and its threads inherit both);
``DENO`` = the Deno binary; ``MODE`` = ``check`` to parse sources only
(:mod:`bollard.sandbox.js.check`).
"""

from __future__ import annotations

import json
import os
import sys

from bollard.sandbox import isolation
from bollard.sandbox.js import WORKER_SCRIPT
from bollard.sandbox.js.profile import js_profile
from bollard.sandbox.priority import Priority, lower_self

# Writable private memory Deno needs before the connector allocates anything: the
# runtime, its snapshot and thread stacks (measured ~60 MiB with --jitless; doubled).
BASELINE_BYTES = 128 * 1024 * 1024
MIN_HEAP_MB = 16
# An empty, unwritable place for Deno's cache (Landlock refuses every write anyway).
DENO_ENV = {
    "DENO_DIR": "/nonexistent/bollard-deno",
    "DENO_NO_UPDATE_CHECK": "1",
    "DENO_NO_PROMPT": "1",
    "NO_COLOR": "1",
}
NOT_DUMPABLE_NOTE = "reset by execve; ptrace still refused (own uid, Landlock domain, seccomp)"


def deno_argv(deno: str, memory_bytes: int, layers: dict[str, bool | str], mode: str = "") -> list[str]:
    """The command line that runs ``worker.js``: no permission, V8 limits, the layers as
    the script's first argument, ``mode`` (``"check"``: parse sources only) its second."""
    heap_mb = max(MIN_HEAP_MB, memory_bytes // (1024 * 1024))
    v8 = ",".join(
        (
            f"--max-old-space-size={heap_mb}",
            "--jitless",
            "--disallow-code-generation-from-strings",
            "--single-threaded",
        )
    )
    return [
        deno,
        "run",
        "--no-prompt",
        "--no-remote",
        "--no-npm",
        "--no-config",
        "--no-lock",
        "--cached-only",
        "--no-code-cache",
        "--quiet",
        f"--v8-flags={v8}",
        WORKER_SCRIPT,
        json.dumps(layers, separators=(",", ":")),
        *([mode] if mode else []),
    ]


def main(argv: list[str]) -> int:
    """Isolate, then exec Deno; returns only when that fails (exit status 3)."""
    memory_bytes, cpu_budget_s, uid = (int(a) for a in argv[:3])
    nice, deno = Priority.parse(argv[3]), argv[4]
    mode = "check" if argv[5:6] == ["check"] else ""
    lower_self(nice)  # before isolation: seccomp then refuses setpriority
    null = os.open(os.devnull, os.O_WRONLY)  # Deno's stderr: escaped code writes nowhere
    layers = isolation.isolate(
        memory_bytes=memory_bytes + BASELINE_BYTES,
        cpu_budget_s=cpu_budget_s,
        keep_fds=(0, 1, 2, null),
        uid=uid,
        profile=js_profile(deno, WORKER_SCRIPT),
    )
    if layers.get("not_dumpable") is True:
        layers["not_dumpable"] = NOT_DUMPABLE_NOTE
    layers["runtime"] = "deno"
    os.dup2(null, 2)
    os.close(null)
    try:
        os.execve(deno, deno_argv(deno, memory_bytes, layers, mode), DENO_ENV)
    except OSError:
        return 3
    return 3  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
