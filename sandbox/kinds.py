"""The kinds of worker the pool starts (DESIGN §3, §4): what differs between the Python
worker (``connector.py``) and the Deno worker (``connector.ts`` / ``connector.js``).

A :class:`WorkerKind` says how a source is checked on the host before any worker starts,
which program a worker runs, how a worker's death reads as an error and whether the
host watches the worker's CPU time per execution (:meth:`WorkerKind.execute` runs one
execution with both). Everything else (the pipe, frames,
limits, reuse and retirement) is shared: :mod:`bollard.sandbox.pool`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConnectorError, LimitExceeded, SandboxError, SandboxUnavailable
from .exchange import Outcome, death_error, execute
from .job import Job
from .js import deno_binary, is_js_connector
from .js.source import CheckedSource, check_source
from .limits import MIB, Limits
from .policy import CompiledConnector, compile_connector
from .process import WORKER_MODULE, WorkerProcess

JS_LAUNCHER_MODULE = "bollard.sandbox.js.launcher"
CPU_POLL_S = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Checked = CompiledConnector | CheckedSource


@dataclass(frozen=True)
class WorkerKind:
    """``name`` ("python" or "js"), the worker's module, whether the host enforces the
    per-execution CPU limit by watching ``/proc`` (Deno cannot arm a CPU timer itself)."""

    name: str
    module: str
    host_cpu_watch: bool

    def check(self, source: str, filename: str) -> Checked:
        """The host's load-time check; :class:`ConnectorCompileError` with the lines."""
        if self.name == "js":
            return check_source(source, filename)
        return compile_connector(source, filename)

    def extra_args(self) -> tuple[str, ...]:
        """Arguments after the common ones (the Deno binary for the JS launcher).
        :class:`SandboxUnavailable` when the runtime is not installed."""
        if self.name != "js":
            return ()
        deno = deno_binary()
        if deno is None:
            raise SandboxUnavailable(
                "TypeScript/JavaScript connectors need Deno: install the `deno` package "
                "(pip install deno) or set BOLLARD_DENO to a deno binary"
            )
        return (deno,)

    def death_error(self, code: int, limits: Limits) -> SandboxError:
        """The error for a worker that died with exit status ``code`` during an execution.
        V8 stops the process with SIGTRAP when its heap limit is reached."""
        if self.name == "js" and code == -signal.SIGTRAP:
            return LimitExceeded(
                "memory_bytes",
                limits.memory_bytes,
                f"the execution exceeded its memory limit of {limits.memory_bytes // MIB} MiB "
                f"({limits.memory_bytes} bytes)",
            )
        return death_error(code, limits)

    async def execute(self, worker: WorkerProcess, job: Job, closed: Callable[[], bool]) -> Outcome:
        """One execution of ``job`` on ``worker`` (:func:`bollard.sandbox.exchange.execute`);
        a worker that dies during it becomes this kind's :meth:`death_error` (or the CPU
        limit :func:`watch_cpu` saw exceeded), or :class:`SandboxUnavailable` when
        ``closed()`` says the pool was closed meanwhile. A Deno worker's CPU time is
        watched from the host (``host_cpu_watch``)."""
        limits = job.limits
        exceeded: list[SandboxError] = []
        watchdog = asyncio.ensure_future(watch_cpu(worker, limits, exceeded)) if self.host_cpu_watch else None
        try:
            return await execute(worker, job)
        except ConnectionError:
            code = await worker.process.wait()
            if closed():
                raise SandboxUnavailable("the sandbox pool was closed") from None
            if exceeded:
                raise exceeded[0] from None
            raise self.death_error(code, limits) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()


PYTHON = WorkerKind("python", WORKER_MODULE, host_cpu_watch=False)
JS = WorkerKind("js", JS_LAUNCHER_MODULE, host_cpu_watch=True)


def kind_for(filename: str) -> WorkerKind:
    """The kind that runs connector file ``filename``."""
    return JS if is_js_connector(filename) else PYTHON


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


async def watch_cpu(worker: WorkerProcess, limits: Limits, exceeded: list[SandboxError]) -> None:
    """Kill ``worker`` once this execution used more than ``limits.cpu_time_ms`` of CPU
    (user + system, every thread), appending the error to ``exceeded``; runs until
    cancelled. Polls ``/proc/<pid>/stat`` every 20 ms (clock-tick resolution)."""
    pid = worker.process.pid
    try:
        start = _cpu_ticks(pid)
    except (OSError, ValueError, IndexError):
        return
    budget = limits.cpu_time_ms * CLOCK_TICKS / 1000
    while worker.alive:
        await asyncio.sleep(CPU_POLL_S)
        try:
            used = _cpu_ticks(pid) - start
        except (OSError, ValueError, IndexError):
            return
        if used > budget:
            exceeded.append(
                LimitExceeded(
                    "cpu_time_ms",
                    limits.cpu_time_ms,
                    f"the execution exceeded its CPU time limit of {limits.cpu_time_ms} ms",
                )
            )
            worker.kill()
            return


__all__ = ["JS", "PYTHON", "ConnectorError", "WorkerKind", "kind_for", "watch_cpu"]
