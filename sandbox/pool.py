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
the replacement is ready: no caller waits for a spawn at a recycle (issue 15).
Network I/O never happens in a worker: each
``ctx.http`` call arrives here as an ``http`` message and is answered by awaiting
the host's ``http_handler`` (the egress policy lives in the platform).

Every message from a worker is treated as hostile (:mod:`bollard.sandbox.protocol`):
capped size, exact types; a malformed one gets the worker killed.

This module schedules: groups, the per-key cap, reuse, retirement and replacement.
The layers below it are :mod:`bollard.sandbox.exchange` (one execution's messages),
:mod:`bollard.sandbox.process` (start, greeting, load and kill of one worker) and
:mod:`bollard.sandbox.pipe` (frames over the worker's pipes).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .errors import ExecutionTimeout, SandboxError, SandboxUnavailable
from .exchange import FileHandler, HttpHandler, Outcome, execute
from .kinds import PYTHON, Checked, WorkerKind, kind_for, watch_cpu
from .limits import DEFAULT_LIMITS, Limits
from .process import WorkerProcess, start_worker
from .protocol import ProtocolError, plain_json

ENTRYPOINTS = ("execute", "test_connection")
# Uids for workers (as root): far above any account, below the 2**31 that some tools
# treat as signed; the platform passes BOLLARD_SANDBOX_UID_BASE / _COUNT.
DEFAULT_UID_RANGE = (1_900_000_000, 4096)
MAX_UID = 2**32 - 2  # (uid_t) -1 means "no change" to setresuid


@dataclass(frozen=True)
class RunResult:
    """A successful execution: ``value`` (plain JSON), ``logs`` (print/ctx.log lines),
    ``http_requests`` (number of ``ctx.http`` calls), ``duration_ms`` (wall time of
    the whole call, including any wait for a worker)."""

    value: Any
    logs: list[str]
    http_requests: int
    duration_ms: float


class _Group:
    """The workers of one integration version and tenant (``key``, ``tenant`` + source)."""

    def __init__(
        self, key: str, tenant: str, source: str, compiled: Checked, cap: int, kind: WorkerKind = PYTHON
    ) -> None:
        self.key = key
        self.kind = kind
        self.tenant = tenant
        self.source = source
        self.compiled = compiled
        self.cap = cap
        self.slots = asyncio.Semaphore(cap)
        self.idle: list[WorkerProcess] = []
        self.busy = 0
        self.running: set[WorkerProcess] = set()
        self.waiting = 0
        self.retired = False
        # workers at their last execution whose replacement is still starting: they keep
        # serving (past max_executions_per_worker) until it is ready, so no caller waits
        # for a spawn at a recycle
        self.awaiting_replacement: set[WorkerProcess] = set()
        self.spare_started: set[WorkerProcess] = set()  # one replacement per worker, ever
        self.warming = 0  # background spawns in flight (replacements, warm-ups)
        self.cold_starts = 0  # spawns a caller waited for
        self.keep_warm = False  # prewarmed: its last idle worker outlives the idle timeout


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
    ) -> None:
        if workers_per_integration < 1 or max_executions_per_worker < 1 or idle_timeout_s <= 0:
            raise ValueError("pool sizes and timeouts must be positive")
        first, count = uid_range
        if first < 1 or count < 1 or first + count > MAX_UID:
            raise ValueError(
                f"uid_range must be (first, count) with 1 <= first and first + count <= {MAX_UID}"
            )
        self.uid_range = (first, count)
        self._uids_in_use: set[int] = set()
        self.workers_per_integration = workers_per_integration
        self.max_executions_per_worker = max_executions_per_worker
        self.idle_timeout_s = idle_timeout_s
        self.python = python or sys.executable
        self._groups: dict[tuple[str, str], _Group] = {}
        self._retired: set[_Group] = set()
        self._background_tasks: set[asyncio.Task[Any]] = set()
        self._replenishing: set[asyncio.Task[Any]] = set()
        self._layers: dict[str, bool | str] = {}
        self._js_layers: dict[str, bool | str] = {}
        self._closed = False
        self._kills: dict[str, int] = {}  # workers stopped, by reason (counters())

    # --- public API --------------------------------------------------------------------

    async def run(
        self,
        *,
        key: str,
        tenant: str = "",
        source: str,
        entrypoint: str,
        operation: str,
        params: dict[str, Any],
        secrets: dict[str, str],
        http_handler: HttpHandler,
        limits: Limits = DEFAULT_LIMITS,
        file_handler: FileHandler | None = None,
        filename: str = "connector.py",
    ) -> RunResult:
        """Run ``entrypoint`` (``"execute"`` or ``"test_connection"``) of connector
        ``source`` once, with its own ``ctx`` (``operation``, a copy of ``params``,
        ``secrets`` of this call only) under ``limits``; ``file_handler`` serves
        ``ctx.files`` (none: ``ctx.files`` calls are refused).

        ``key`` names the integration version, ``"<slug>:<content hash>"``, and
        ``tenant`` whose call it is (the credential id; ``""`` only for callers with a
        single tenant): a worker serves one (key, tenant) and one source for its whole
        life (DESIGN §4.5). A new source under the same key, or a new key with the same
        ``<slug>:`` prefix, retires the old workers of every tenant: idle ones stop at
        once, running calls finish on theirs.

        Raises (all :class:`SandboxError`, ``code`` per DESIGN §8):
        :class:`ConnectorCompileError` (the source fails the compile policy),
        :class:`ExecutionTimeout` (``timeout``), :class:`LimitExceeded`
        (``limit_exceeded``: CPU, memory, HTTP requests, result size),
        :class:`ConnectorError` (``connector_error``), :class:`HttpRequestRefused` (an
        uncaught refusal, with the handler's code), :class:`SandboxUnavailable`.
        ``filename`` picks the worker kind (:mod:`bollard.sandbox.kinds`): ``connector.py``
        runs in the Python worker, ``connector.ts`` / ``connector.js`` in the Deno worker.
        ``TypeError``/``ValueError`` for arguments the host got wrong.
        """
        started = time.monotonic()
        if entrypoint not in ENTRYPOINTS:
            raise ValueError(f"entrypoint must be one of {ENTRYPOINTS}")
        if type(operation) is not str or type(key) is not str or type(tenant) is not str:
            raise TypeError("key, tenant and operation must be str")
        if type(secrets) is not dict or any(
            type(k) is not str or type(v) is not str for k, v in secrets.items()
        ):
            raise TypeError("secrets must be a dict of str to str")
        if type(params) is not dict:
            raise TypeError("params must be a dict")
        plain_params = plain_json(params, "params")
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is closed")
        group = self._group(key, tenant, source, filename)
        worker: WorkerProcess | None = None
        outcome = Outcome()
        timeout = asyncio.timeout(limits.wall_time_ms / 1000)
        ended = "failed"  # why a worker that cannot be reused is stopped (counters())
        try:
            async with timeout:
                worker = await self._acquire(group, limits)
                group.running.add(worker)
                outcome = await self._execute(
                    worker,
                    entrypoint,
                    operation,
                    plain_params,
                    secrets,
                    http_handler,
                    limits,
                    file_handler,
                    group.kind,
                )
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
            "workers": len(self._uids_in_use),
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
        return {
            f"{key}/{tenant}" if tenant else key: {
                "idle": len(g.idle),
                "busy": g.busy,
                "waiting": g.waiting,
                "starting": g.warming,
                "cold_starts": g.cold_starts,
                "idle_pids": [w.process.pid for w in g.idle],
            }
            for (key, tenant), g in self._groups.items()
        }

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

    def _group(self, key: str, tenant: str, source: str, filename: str = "connector.py") -> _Group:
        group = self._groups.get((key, tenant))
        kind = kind_for(filename)
        if group is not None and (group.source is source or group.source == source) and group.kind is kind:
            return group
        compiled = kind.check(source, filename)  # raises ConnectorCompileError
        if group is not None:
            self._retire(group)
        # "<integration>:<version>" keys: a new version retires the older ones (of every
        # tenant); a new source under this key retires its other tenants' workers too.
        integration = key.rpartition(":")[0]
        for other_key, other_tenant in list(self._groups):
            same_version = other_key == key and self._groups[(other_key, other_tenant)].source != source
            if same_version or (
                integration and other_key != key and other_key.rpartition(":")[0] == integration
            ):
                self._retire(self._groups.pop((other_key, other_tenant)))
        group = _Group(key, tenant, source, compiled, self.workers_per_integration, kind)
        self._groups[(key, tenant)] = group
        return group

    def _retire(self, group: _Group) -> None:
        group.retired = True
        while group.idle:
            self._kill(group.idle.pop(), "closed" if self._closed else "retired")
        if group.busy or group.waiting:  # tracked until its last call ends (see close)
            self._retired.add(group)

    async def _acquire(self, group: _Group, limits: Limits) -> WorkerProcess:
        group.waiting += 1
        try:
            await group.slots.acquire()
        finally:
            group.waiting -= 1
        group.busy += 1
        try:
            if self._closed:
                raise SandboxUnavailable("the sandbox pool was closed")
            for worker in reversed(group.idle):
                if (worker.memory_bytes, worker.cpu_time_ms) == (
                    limits.memory_bytes,
                    limits.cpu_time_ms,
                ):
                    group.idle.remove(worker)
                    if worker.idle_timer is not None:
                        worker.idle_timer.cancel()
                        worker.idle_timer = None
                    if worker.alive:
                        return worker
                    self._kill(worker, "died_idle")
            # No idle worker fits these limits: make room under the cap, start one.
            while group.idle and len(group.idle) + group.busy > group.cap:
                self._kill(group.idle.pop(0), "other_limits")
            group.cold_starts += 1
            return await self._spawn(group, limits)
        except BaseException:
            group.busy -= 1
            group.slots.release()
            raise

    def _release(self, group: _Group, worker: WorkerProcess, reusable: bool, reason: str = "failed") -> None:
        group.busy -= 1
        group.running.discard(worker)
        healthy = reusable and worker.alive and not group.retired and not self._closed
        last = worker.executions >= self.max_executions_per_worker - 1
        if healthy and last and worker not in group.spare_started:
            # Its next execution is its last: start the replacement now, in the
            # background, so it is ready before this one retires (issue 15).
            group.spare_started.add(worker)
            group.awaiting_replacement.add(worker)
            self._start_spare(group, worker.memory_bytes, worker.cpu_time_ms)
        keep = worker.executions < self.max_executions_per_worker or worker in group.awaiting_replacement
        if healthy and keep:
            group.idle.append(worker)
            loop = asyncio.get_running_loop()
            worker.idle_timer = loop.call_later(self.idle_timeout_s, self._reap_idle, group, worker)
        else:
            if healthy:
                reason = "recycled"
            elif reusable and worker.alive:
                reason = "closed" if self._closed else "retired"
            group.awaiting_replacement.discard(worker)
            group.spare_started.discard(worker)
            self._kill(worker, reason)
        if group.retired and not group.busy and not group.waiting:
            self._retired.discard(group)
        group.slots.release()

    def _start_spare(self, group: _Group, memory_bytes: int, cpu_time_ms: int) -> None:
        group.warming += 1  # counted now: the task has not started yet
        task = self._background(
            self._spare(group, Limits(memory_bytes=memory_bytes, cpu_time_ms=cpu_time_ms))
        )
        self._replenishing.add(task)
        task.add_done_callback(self._replenishing.discard)

    async def _spare(self, group: _Group, limits: Limits) -> None:
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
        group.idle.append(worker)
        loop = asyncio.get_running_loop()
        worker.idle_timer = loop.call_later(self.idle_timeout_s, self._reap_idle, group, worker)
        replaced = next(
            (
                w
                for w in group.awaiting_replacement
                if (w.memory_bytes, w.cpu_time_ms) == (limits.memory_bytes, limits.cpu_time_ms)
            ),
            None,
        )
        if replaced is not None:
            group.awaiting_replacement.discard(replaced)
            if replaced in group.idle:  # a busy one retires when its execution ends
                group.idle.remove(replaced)
                group.spare_started.discard(replaced)
                self._kill(replaced, "recycled")
        while len(group.idle) + group.busy > group.cap and len(group.idle) > 1:
            self._kill(group.idle.pop(0), "other_limits")  # the oldest idle worker over the cap

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
        if group.idle or group.busy or group.warming:
            return False
        self._start_spare(group, limits.memory_bytes, limits.cpu_time_ms)
        return True

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)
        return task

    def _reap_idle(self, group: _Group, worker: WorkerProcess) -> None:
        worker.idle_timer = None
        if group.keep_warm and not group.busy and group.idle == [worker] and not group.retired:
            return  # the warm worker of a prewarmed group stays (prewarm)
        if worker in group.idle:
            group.idle.remove(worker)
            self._kill(worker, "idle")
        group.awaiting_replacement.discard(worker)
        group.spare_started.discard(worker)
        if (
            not group.idle
            and not group.busy
            and not group.warming
            and self._groups.get((group.key, group.tenant)) is group
        ):
            del self._groups[(group.key, group.tenant)]

    def _kill(self, worker: WorkerProcess, reason: str) -> None:
        self._kills[reason] = self._kills.get(reason, 0) + 1
        worker.kill()
        self._background(self._reap(worker))

    async def _reap(self, worker: WorkerProcess) -> None:
        try:
            await worker.reap()
        finally:
            self._uids_in_use.discard(worker.uid)  # its process is gone: the uid is free

    async def _start(self, limits: Limits, kind: WorkerKind = PYTHON) -> WorkerProcess:
        """Start a worker of ``kind`` under a uid no live worker has."""
        first, count = self.uid_range
        uid = next((u for u in range(first, first + count) if u not in self._uids_in_use), None)
        if uid is None:
            raise SandboxUnavailable(f"all {count} sandbox worker uids (uid_range) are in use")
        self._uids_in_use.add(uid)
        try:
            return await start_worker(
                self.python, limits, self.max_executions_per_worker, uid, kind.module, kind.extra_args()
            )
        except BaseException:
            self._uids_in_use.discard(uid)
            raise

    async def _spawn(self, group: _Group, limits: Limits) -> WorkerProcess:
        worker = await self._start(limits, group.kind)
        try:
            layers = await worker.handshake()
            if group.kind is PYTHON:
                self._layers = layers
            else:
                self._js_layers = layers
            await worker.load(group.source, group.compiled.filename)
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

    async def _execute(
        self,
        worker: WorkerProcess,
        entrypoint: str,
        operation: str,
        params: dict[str, Any],
        secrets: dict[str, str],
        http_handler: HttpHandler,
        limits: Limits,
        file_handler: FileHandler | None = None,
        kind: WorkerKind = PYTHON,
    ) -> Outcome:
        """One execution on ``worker`` (:func:`bollard.sandbox.exchange.execute`); a
        worker that dies during it becomes its kind's death error
        (:meth:`~bollard.sandbox.kinds.WorkerKind.death_error`), or
        :class:`SandboxUnavailable` once the pool is closed. A Deno worker's CPU time is
        watched from here (:func:`~bollard.sandbox.kinds.watch_cpu`)."""
        exceeded: list[SandboxError] = []
        watchdog = asyncio.ensure_future(watch_cpu(worker, limits, exceeded)) if kind.host_cpu_watch else None
        try:
            return await execute(
                worker, entrypoint, operation, params, secrets, http_handler, limits, file_handler
            )
        except ConnectionError:
            code = await worker.process.wait()
            if self._closed:
                raise SandboxUnavailable("the sandbox pool was closed") from None
            if exceeded:
                raise exceeded[0] from None
            raise kind.death_error(code, limits) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
