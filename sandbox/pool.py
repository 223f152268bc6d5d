"""Host side of the sandbox: a pool of worker processes (DESIGN §4).

:class:`SandboxPool` runs connector code in worker processes
(:mod:`bollard.sandbox.worker`), one group of workers per integration version
(``key``) and tenant (``tenant``, the credential id: DESIGN §4.5, a worker serves one
(integration version, credential) for its whole life, so process-wide state such as
the regex cache or its timing is never shared between tenants). Workers are started
lazily (or ahead of the first call: :meth:`SandboxPool.prewarm`), reused while idle,
stopped after ``idle_timeout_s`` or ``max_executions_per_worker`` executions, and killed
(SIGKILL) and replaced past a limit or on a crash. A worker's replacement is started in
the background when it begins its last execution, and the worker keeps serving until
the replacement is ready: no caller waits for a spawn at a recycle (issue 15). The
workers of an integration key that keeps hitting its limits or crashing start at a lower
CPU priority until it runs cleanly again (:mod:`bollard.sandbox.priority`; issue 14).
Network I/O never happens in a worker: each
``ctx.http`` call arrives here as an ``http`` message and is answered by awaiting
the host's ``http_handler`` (the egress policy lives in the platform).

Every message from a worker is treated as hostile (:mod:`bollard.sandbox.protocol`):
capped size, exact types; a malformed one gets the worker killed.

This module schedules: groups, the per-key cap, reuse, retirement and replacement.
Beside it: :mod:`bollard.sandbox.job` (what a call asks: :class:`Job`, and
:class:`RunResult`), :mod:`bollard.sandbox.group` (one group's workers and its spare
bookkeeping), :mod:`bollard.sandbox.uids` (a uid per live worker),
:mod:`bollard.sandbox.priority` (strike scores and nice values per key). The layers below it
are :mod:`bollard.sandbox.exchange` (one execution's messages),
:mod:`bollard.sandbox.process` (start, greeting, load and kill of one worker) and
:mod:`bollard.sandbox.pipe` (frames over the worker's pipes).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from typing import Any

from .errors import ExecutionTimeout, SandboxError, SandboxUnavailable
from .exchange import Outcome
from .frames import ProtocolError
from .group import WorkerGroup
from .job import Job, RunResult
from .kinds import PYTHON, WorkerKind, kind_for
from .limits import DEFAULT_LIMITS, Limits
from .priority import STRIKE_REASONS, Priority, StrikeScores, renice
from .process import WorkerProcess, start_worker
from .uids import DEFAULT_UID_RANGE, UidRange

__all__ = ["DEFAULT_UID_RANGE", "Job", "RunResult", "SandboxPool"]


class SandboxPool:
    """Runs connector code in isolated worker processes.

    - ``workers_per_integration``: most workers (busy or idle) per ``key`` and
      ``tenant``; callers beyond it wait for a free one, within their wall time.
    - ``max_executions_per_worker``: a worker is stopped after this many executions.
    - ``idle_timeout_s``: an idle worker is stopped after this many seconds.
    - ``python``: the interpreter for workers (default ``sys.executable``).
    - ``uid_range``: ``(first, count)`` uids for workers when the host runs as root;
      each live worker gets its own (DESIGN §4.5), so workers cannot signal, trace or
      re-prioritise each other. ``ValueError`` for a range that includes uid 0 or is
      empty; :class:`SandboxUnavailable` when every uid is in use.
    - ``strike_nice``: nice levels (above the host's) for the workers of a key that keeps
      hitting its limits or crashing (:mod:`bollard.sandbox.priority`; ``0`` turns it
      off). Its CPU loops then yield to the other integrations' workers.

    Use from one event loop; call :meth:`close` at shutdown.
    """

    def __init__(
        self,
        *,
        workers_per_integration: int = 2,
        max_executions_per_worker: int = 200,
        idle_timeout_s: float = 60.0,
        python: str | None = None,
        uid_range: tuple[int, int] = DEFAULT_UID_RANGE,
        strike_nice: int = 10,
    ) -> None:
        if workers_per_integration < 1 or max_executions_per_worker < 1 or idle_timeout_s <= 0:
            raise ValueError("pool sizes and timeouts must be positive")
        self._uids = UidRange(*uid_range)
        self.uid_range = (self._uids.first, self._uids.count)
        self.workers_per_integration = workers_per_integration
        self.max_executions_per_worker = max_executions_per_worker
        self.idle_timeout_s = idle_timeout_s
        self.python = python or sys.executable
        self._groups: dict[tuple[str, str], WorkerGroup] = {}
        self._retired: set[WorkerGroup] = set()
        self._background_tasks: set[asyncio.Task[Any]] = set()
        self._replenishing: set[asyncio.Task[Any]] = set()
        self._layers: dict[str, bool | str] = {}
        self._js_layers: dict[str, bool | str] = {}
        self._closed = False
        self._kills: dict[str, int] = {}  # workers stopped, by reason (counters())
        self._strikes = StrikeScores(strike_nice)  # CPU priority per key (priorities())

    # --- public API --------------------------------------------------------------------

    async def run(self, job: Job) -> RunResult:
        """Run ``job`` once (:class:`~bollard.sandbox.job.Job`: the connector, entry point,
        inputs, limits and host callbacks) in a worker of its (key, tenant).

        A worker serves one (key, tenant) and one source for its whole life (DESIGN
        §4.5). A new source under the same key, or a new key with the same ``<slug>:``
        prefix, retires the old workers of every tenant: idle ones stop at once, running
        calls finish on theirs.

        Raises (all :class:`SandboxError`, ``code`` per DESIGN §8):
        :class:`ConnectorCompileError` (the source fails the compile policy),
        :class:`ExecutionTimeout` (``timeout``), :class:`LimitExceeded`
        (``limit_exceeded``: CPU, memory, HTTP requests, result size),
        :class:`ConnectorError` (``connector_error``), :class:`HttpRequestRefused` (an
        uncaught refusal, with the handler's code), :class:`SandboxUnavailable`.
        ``TypeError``/``ValueError`` for a job the host got wrong
        (:meth:`~bollard.sandbox.job.Job.checked`).
        """
        started = time.monotonic()
        job = job.checked()
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is closed")
        group = self._group(job.key, job.tenant, job.source, job.filename)
        limits = job.limits
        worker: WorkerProcess | None = None
        outcome = Outcome()
        timeout = asyncio.timeout(limits.wall_time_ms / 1000)
        ended = "failed"  # why a worker that cannot be reused is stopped (counters())
        try:
            async with timeout:
                worker = await self._acquire(group, limits)
                group.running.add(worker)
                outcome = await group.kind.execute(worker, job, lambda: self._closed)
        except TimeoutError:
            if not timeout.expired():
                raise
            ended = "timeout"
            where = "running" if worker is not None else "waiting for a free sandbox worker"
            raise ExecutionTimeout(
                f"the execution exceeded its wall time limit of {limits.wall_time_ms} ms (while {where})"
            ) from None
        except SandboxError as e:
            ended = e.code
            raise
        finally:
            if worker is not None:
                reason = outcome.error.code if outcome.error is not None else ended
                self._release(group, worker, outcome.reusable, reason)
        if outcome.error is not None:
            raise outcome.error
        return RunResult(
            value=outcome.value,
            logs=outcome.logs,
            http_requests=outcome.http_requests,
            duration_ms=(time.monotonic() - started) * 1000,
        )

    def isolation_layers(self) -> dict[str, bool | str]:
        """The isolation layers the most recent worker reported (see
        :func:`bollard.sandbox.isolation.isolate`), e.g. ``{"process": True,
        "network_namespace": True, "unprivileged_uid": "65534", "seccomp": True, ...}``;
        ``{"process": True, "probed": False}`` before any worker started (see
        :meth:`probe`)."""
        return dict(self._layers) if self._layers else {"process": True, "probed": False}

    def js_isolation_layers(self) -> dict[str, bool | str] | None:
        """The layers the most recent Deno worker reported (as :meth:`isolation_layers`,
        plus ``"runtime": "deno"``); ``None`` before any started."""
        return dict(self._js_layers) if self._js_layers else None

    async def probe(self) -> dict[str, bool | str]:
        """Start one worker, record the layers it reports, stop it; returns them.
        Raises :class:`SandboxUnavailable` when a worker cannot start."""
        worker = await self._start(DEFAULT_LIMITS)
        try:
            self._layers = await worker.handshake()
        finally:
            self._kill(worker, "probe")
        return self.isolation_layers()

    def retire(self, key: str) -> None:
        """Stop the workers of ``key`` (an integration version removed or replaced), of
        every tenant: idle ones now, busy ones when their execution ends."""
        for group_key in [k for k in self._groups if k[0] == key]:
            self._retire(self._groups.pop(group_key))
        self._strikes.forget(key)

    def counters(self) -> dict[str, Any]:
        """Pool-wide figures for metrics, as plain data: ``{"workers": live worker
        processes, "busy": slots running an execution, "waiting": callers queued at a cap,
        "kills": {reason: workers stopped since start}}``. Kill reasons: ``idle``
        (idle timeout), ``recycled`` (``max_executions_per_worker``), ``retired`` (its
        integration version was replaced or removed), ``closed`` (pool shut down),
        ``probe``, ``start_failed``, ``start_cancelled`` (the caller's wall time ran out
        while the worker started), ``died_idle`` (found dead when reused),
        ``other_limits`` (an idle worker made room for one with other limits), or the
        code of the error that ended the worker (``timeout``, ``limit_exceeded``,
        ``connector_error``, ``internal_error``; ``failed`` when none is known)."""
        groups = [*self._groups.values(), *self._retired]
        return {
            "workers": self._uids.in_use(),
            "busy": sum(g.busy for g in groups),
            "waiting": sum(g.waiting for g in groups),
            "kills": dict(self._kills),
        }

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per ``"<key>/<tenant>"`` (just ``"<key>"`` for the tenant ``""``): ``{"idle": n,
        "busy": n, "waiting": n, "starting": n, "cold_starts": n, "idle_pids": [...]}``
        (waiting: callers queued for a worker at the cap; starting: replacements and
        warm workers being started in the background; cold_starts: spawns a caller
        waited for)."""
        return {f"{key}/{tenant}" if tenant else key: g.stats() for (key, tenant), g in self._groups.items()}

    def priorities(self) -> dict[str, dict[str, float | bool]]:
        """Per integration key with a strike score: ``{"score": float, "lowered": bool}``
        (lowered: its workers run at a lower CPU priority, see
        :mod:`bollard.sandbox.priority`)."""
        return self._strikes.snapshot()

    async def close(self) -> None:
        """Kill every worker and wait for them to exit. Running executions fail with
        ``internal_error`` (:class:`SandboxUnavailable`) when they next use their
        worker; later :meth:`run` calls fail at once."""
        self._closed = True
        for task in list(self._replenishing):
            task.cancel()
        for key in {k for k, _ in self._groups}:
            self.retire(key)
        for group in list(self._retired):
            for worker in list(group.running):
                self._kill(worker, "closed")
        if self._background_tasks:
            await asyncio.gather(*self._background_tasks, return_exceptions=True)

    # --- groups and workers --------------------------------------------------------------

    def _group(self, key: str, tenant: str, source: str, filename: str = "connector.py") -> WorkerGroup:
        group = self._groups.get((key, tenant))
        kind = kind_for(filename)
        if group is not None and group.serves(source, kind):
            return group
        compiled = kind.check(source, filename)  # raises ConnectorCompileError
        if group is not None:
            self._retire(group)
            self._strikes.forget(key)  # a new source starts with a clean score
        for other in [k for k, g in self._groups.items() if g.superseded_by(key, source)]:
            self._retire(self._groups.pop(other))
            self._strikes.forget(other[0])
        group = WorkerGroup(key, tenant, source, compiled, self.workers_per_integration, kind)
        self._groups[(key, tenant)] = group
        return group

    def _retire(self, group: WorkerGroup) -> None:
        group.retired = True
        while group.idle:
            self._kill(group.idle.pop(), "closed" if self._closed else "retired")
        if group.busy or group.waiting:  # tracked until its last call ends (see close)
            self._retired.add(group)

    async def _acquire(self, group: WorkerGroup, limits: Limits) -> WorkerProcess:
        group.waiting += 1
        try:
            await group.slots.acquire()
        finally:
            group.waiting -= 1
        group.busy += 1
        try:
            if self._closed:
                raise SandboxUnavailable("the sandbox pool was closed")
            worker, dead = group.take_idle(limits)
            for corpse in dead:
                self._kill(corpse, "died_idle")
            if worker is not None:
                return worker
            # No idle worker fits these limits: make room under the cap, start one.
            for excess in group.over_cap():
                self._kill(excess, "other_limits")
            group.cold_starts += 1
            return await self._spawn(group, limits)
        except BaseException:
            group.busy -= 1
            group.slots.release()
            raise

    def _release(
        self, group: WorkerGroup, worker: WorkerProcess, reusable: bool, reason: str = "failed"
    ) -> None:
        group.busy -= 1
        group.running.discard(worker)
        clean = reusable and worker.alive  # the execution left its worker fit (priority)
        healthy = clean and not group.retired and not self._closed
        if healthy and group.needs_spare(worker, self.max_executions_per_worker):
            # Its next execution is its last: start the replacement now, in the
            # background, so it is ready before this one retires (issue 15).
            self._start_spare(group, worker.memory_bytes, worker.cpu_time_ms)
        if healthy and group.keeps(worker, self.max_executions_per_worker):
            self._park(group, worker)
        else:
            if healthy:
                reason = "recycled"
            elif reusable and worker.alive:
                reason = "closed" if self._closed else "retired"
            group.forget(worker)
            self._kill(worker, reason)
        if group.done:
            self._retired.discard(group)
        group.slots.release()
        self._score(group.key, clean, reason)  # last: a worker parked above is reniced too

    def _score(self, key: str, clean: bool, reason: str) -> None:
        """Count an execution of ``key`` for its CPU priority (``clean``: its worker stayed
        reusable; else ``reason``, the kill reason, may be a strike); on a change, renice
        the key's live workers (best effort: lowering a nice value needs privilege)."""
        if clean:
            changed = self._strikes.clean(key)
        elif reason in STRIKE_REASONS:
            changed = self._strikes.strike(key)
        else:
            return
        if changed:
            priority = self._strikes.priority(key)
            for group in [*self._groups.values(), *self._retired]:
                if group.key == key:
                    for worker in [*group.idle, *group.running]:
                        if worker.alive:
                            renice(worker.process.pid, priority)

    def _park(self, group: WorkerGroup, worker: WorkerProcess) -> None:
        """Put ``worker`` in the idle list, stopped after ``idle_timeout_s`` unless reused."""
        group.idle.append(worker)
        loop = asyncio.get_running_loop()
        worker.idle_timer = loop.call_later(self.idle_timeout_s, self._reap_idle, group, worker)

    def _start_spare(self, group: WorkerGroup, memory_bytes: int, cpu_time_ms: int) -> None:
        group.warming += 1  # counted now: the task has not started yet
        task = self._background(
            self._spare(group, Limits(memory_bytes=memory_bytes, cpu_time_ms=cpu_time_ms))
        )
        self._replenishing.add(task)
        task.add_done_callback(self._replenishing.discard)

    async def _spare(self, group: WorkerGroup, limits: Limits) -> None:
        """Start a worker for ``group`` outside its slots (no caller waits for it; the
        group may hold one process over its cap meanwhile) and put it in the idle list;
        then retire the idle workers it replaces."""
        try:
            worker = await self._spawn(group, limits)
        except SandboxError:
            return
        finally:
            group.warming -= 1
        if group.retired or self._closed:
            self._kill(worker, "closed" if self._closed else "retired")
            return
        self._park(group, worker)
        replaced = group.replaced_by(limits)  # a busy one retires when its execution ends
        if replaced is not None:
            self._kill(replaced, "recycled")
        for excess in group.over_cap(keep=1):  # the oldest idle workers over the cap
            self._kill(excess, "other_limits")

    def prewarm(
        self,
        *,
        key: str,
        tenant: str = "",
        source: str,
        limits: Limits = DEFAULT_LIMITS,
        filename: str = "connector.py",
    ) -> bool:
        """Start one worker for (``key``, ``tenant``) in the background when it has none
        (idle, busy or starting), so its first call does not wait for a cold start
        (issue 15: after an integration loads or its credentials are set). Returns
        whether one was started. ``filename`` picks the worker kind, as in :meth:`run`.
        The group then keeps its last idle worker past
        ``idle_timeout_s`` (until the version is retired). Raises
        :class:`ConnectorCompileError` for a source the compile policy refuses."""
        if self._closed:
            return False
        group = self._group(key, tenant, source, filename)
        group.keep_warm = True
        if not group.empty:
            return False
        self._start_spare(group, limits.memory_bytes, limits.cpu_time_ms)
        return True

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)
        return task

    def _reap_idle(self, group: WorkerGroup, worker: WorkerProcess) -> None:
        worker.idle_timer = None
        if group.stays_warm(worker):
            return  # the warm worker of a prewarmed group stays (prewarm)
        if worker in group.idle:
            group.idle.remove(worker)
            self._kill(worker, "idle")
        group.forget(worker)
        if group.empty and self._groups.get((group.key, group.tenant)) is group:
            del self._groups[(group.key, group.tenant)]

    def _kill(self, worker: WorkerProcess, reason: str) -> None:
        self._kills[reason] = self._kills.get(reason, 0) + 1
        worker.kill()
        self._background(self._reap(worker))

    async def _reap(self, worker: WorkerProcess) -> None:
        try:
            await worker.reap()
        finally:
            self._uids.free(worker.uid)  # its process is gone: the uid is free

    async def _start(
        self, limits: Limits, kind: WorkerKind = PYTHON, priority: Priority | None = None
    ) -> WorkerProcess:
        """Start a worker of ``kind`` under a uid no live worker has, at ``priority`` (the
        host's when ``None``)."""
        uid = self._uids.take()
        try:
            return await start_worker(
                self.python,
                limits,
                self.max_executions_per_worker,
                uid,
                kind.module,
                kind.extra_args(),
                priority,
            )
        except BaseException:
            self._uids.free(uid)
            raise

    async def _spawn(self, group: WorkerGroup, limits: Limits) -> WorkerProcess:
        lowered = self._strikes.lowered(group.key)
        priority = self._strikes.priority(group.key) if lowered else None
        worker = await self._start(limits, group.kind, priority)
        try:
            if priority is not None:  # now too (best effort): its interpreter's start runs lowered
                renice(worker.process.pid, priority)
            layers = await worker.handshake()
            if group.kind is PYTHON:
                self._layers = layers
            else:
                self._js_layers = layers
            await worker.load(group.source, group.compiled.filename)
            if self._strikes.lowered(group.key) != lowered:  # it changed during the start
                renice(worker.process.pid, self._strikes.priority(group.key))
        except (ConnectionError, ProtocolError):
            self._kill(worker, "start_failed")
            raise SandboxUnavailable("the sandbox worker failed while loading the connector") from None
        except asyncio.CancelledError:  # the caller's wall time ran out during the start
            self._kill(worker, "start_cancelled")
            raise
        except BaseException:
            self._kill(worker, "start_failed")
            raise
        return worker
