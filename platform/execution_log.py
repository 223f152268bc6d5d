"""The execution log: every call, recorded in the state database (DESIGN §8 ``/api/executions``).

Records are queued in memory and written in batches by a background task (one
transaction per batch, at most :data:`BATCH_INTERVAL_S` after the call), so logging a
read adds no database round trip to it. A write's record is committed before its answer
(:meth:`ExecutionLog.commit`, awaited by the execution service; concurrent writes share
one transaction, with any reads queued meanwhile). So a SIGKILL loses at most the read
records of the last batch window, never a write's (DESIGN §12).
:meth:`ExecutionLog.flush` writes what is queued (tests and shutdown use it).
Parameters are stored already redacted by the execution service, and so are the
connector's log lines (``print``/``ctx.log``): the service starts a capture per call
(:func:`capture_connector_lines`), adds the redacted lines as the sandbox returns them
(:func:`add_connector_lines`), and :meth:`ExecutionLog.record` stores what was captured
with the call's record (at most 200 lines of 2000 characters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform import request_id
from bollard.platform.params import renderable
from bollard.platform.store.tables import executions
from bollard.platform.timestamps import iso_utc

if TYPE_CHECKING:
    from bollard.platform.invocation import Invocation
    from bollard.platform.packages import IntegrationVersion

log = logging.getLogger("bollard.executions")
MAX_QUEUE = 10_000
MAX_PARAMS_CHARS = 16_384
# Each flush costs ~2 ms of event-loop time (measured on SQLite); batching keeps that
# off the per-call cost. Readers (``query``) flush first, so they never miss a record.
BATCH_INTERVAL_S = 0.25
MAX_LOG_LINES = 200
MAX_LOG_LINE_CHARS = 2000

#: ``observer(version, operation, status, error_code, duration_s)`` of each record (metrics)
Observer = Callable[["IntegrationVersion | None", str, str, "str | None", float], None]

# The connector lines of the call running in this task (None: no call is capturing).
_connector_lines: ContextVar[list[str] | None] = ContextVar("bollard_connector_lines", default=None)
# The FileReferences (ctx.files) the call running in this task stored.
_execution_files: ContextVar[list[dict[str, Any]] | None] = ContextVar(
    "bollard_execution_files", default=None
)
# The caller's token and approval id of the call running in this task (its files' owner).
_caller: ContextVar[tuple[str | None, str | None]] = ContextVar("bollard_caller", default=(None, None))
MAX_FILES_LISTED = 200


def capture_connector_lines(token_id: str | None = None, approval_id: str | None = None) -> None:
    """Start collecting connector log lines and stored files for the call about to run
    in this task, made with ``token_id`` (``None``: an internal caller), running the
    approved write ``approval_id`` if any."""
    _connector_lines.set([])
    _execution_files.set([])
    _caller.set((token_id, approval_id))


def current_caller() -> tuple[str | None, str | None]:
    """``(token id, approval id)`` of the call running in this task (see
    :func:`capture_connector_lines`)."""
    return _caller.get()


def add_execution_file(reference: dict[str, Any]) -> None:
    """List a file the current call stored (Tale's FileReference) with its record."""
    kept = _execution_files.get()
    if kept is not None and len(kept) < MAX_FILES_LISTED:
        kept.append(dict(reference))


def _take_files() -> list[dict[str, Any]] | None:
    kept = _execution_files.get()
    if kept is None:
        return None
    _execution_files.set(None)
    return kept or None


def add_connector_lines(lines: list[str]) -> None:
    """Keep (already redacted) connector lines for the current call's record, capped at
    :data:`MAX_LOG_LINES` lines of :data:`MAX_LOG_LINE_CHARS` characters."""
    kept = _connector_lines.get()
    if kept is None:
        return
    room = MAX_LOG_LINES - len(kept)
    kept.extend(line[:MAX_LOG_LINE_CHARS] for line in lines[: max(0, room)])


def _take_connector_lines() -> list[str] | None:
    kept = _connector_lines.get()
    if kept is None:
        return None
    _connector_lines.set(None)
    return kept or None


@dataclass
class ExecutionFilter:
    """Filters of ``GET /api/executions``; ``limit`` rows (≤500) after ``offset``."""

    integration: str | None = None
    operation: str | None = None
    status: str | None = None
    credential_id: str | None = None
    approval_id: str | None = None
    caller: str | None = None  # the front: api, cli, mcp, tools, ui, approval
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # started before this
    limit: int = 50
    offset: int = 0


def _row_json(row: Any) -> dict[str, Any]:
    """A record as the list shows it (without its log lines); timestamps ISO 8601 UTC; any
    stored ``params`` render (:func:`~bollard.platform.params.renderable`)."""
    m = row._mapping
    return {
        "id": m["id"],
        "startedAt": iso_utc(m["started_at"]),
        "durationMs": m["duration_ms"],
        "tokenId": m["token_id"],
        "caller": m["caller"],
        "integration": m["integration"],
        "operation": m["operation"],
        "version": m["version"],
        "credentialId": m["credential_id"],
        "params": renderable(m["params"]),
        "status": m["status"],
        "errorCode": m["error_code"],
        "errorMessage": m["error_message"],
        "approvalId": m["approval_id"],
        "mock": bool(m["mock"]),
        "requestId": m["request_id"],
    }


class ExecutionLog:
    """Queue + background writer + queries for the ``executions`` table."""

    def __init__(self, engine: AsyncEngine, *, retention_days: int = 30) -> None:
        self._engine = engine
        self._queue: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.retention_days = retention_days
        self.observers: list[Observer] = []  # told of every record (the metrics count calls)

    def record(
        self,
        inv: Invocation,
        version: IntegrationVersion | None,
        started: datetime,
        duration_s: float,
        params: Any,
        status: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        approval_id: str | None = None,
        mock: bool = False,
    ) -> None:
        """Queue one record (never blocks; drops the oldest past 10 000 queued).

        The connector lines captured for this call (see the module docstring) go with it,
        and so does the request id of the HTTP request it serves (``request_id.py``).
        """
        if isinstance(params, dict) and len(repr(params)) > MAX_PARAMS_CHARS:
            params = {"truncated": True, "keys": sorted(params)[:100]}
        self._queue.append(
            {
                "id": str(uuid.uuid4()),
                "started_at": started,
                "duration_ms": round(duration_s * 1000, 3),
                "token_id": inv.token_id,
                "caller": inv.caller,
                "integration": inv.slug[:64],
                "operation": inv.operation[:128],
                "version": version.version if version else None,
                "credential_id": inv.credential_id[:64],
                "params": params,
                "status": status,
                "error_code": error_code,
                "error_message": (error_message or "")[:4000] or None,
                "approval_id": approval_id,
                "mock": mock,
                "logs": _take_connector_lines(),
                "request_id": request_id.current(),
                "files": _take_files(),
            }
        )
        for observer in self.observers:
            try:
                observer(version, inv.operation, status, error_code, duration_s)
            except Exception:  # metrics must never fail a call
                log.exception("execution log observer failed")
        if len(self._queue) > MAX_QUEUE:
            del self._queue[: len(self._queue) - MAX_QUEUE]
        self._wake.set()
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):
                self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(BATCH_INTERVAL_S)  # gather a batch: one transaction for many calls
            try:
                await self.flush()
            except Exception:
                log.exception("writing the execution log failed; will retry")
                await asyncio.sleep(1)

    async def flush(self) -> None:
        """Write every queued record now."""
        async with self._lock:
            batch, self._queue = self._queue, []
            if not batch:
                return
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(executions.insert(), batch)
            except Exception:
                self._queue[:0] = batch
                raise

    async def commit(self) -> None:
        """Write every queued record now, this call's among them (the execution service
        awaits it before answering a write; concurrent writes share one transaction).
        A failing database is logged, not raised: the write already happened, its record
        stays queued and the writer retries."""
        try:
            await self.flush()
        except Exception:
            log.exception("committing the execution log failed; will retry")
            self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def query(self, f: ExecutionFilter) -> tuple[list[dict[str, Any]], int]:
        """Matching records newest first, and the total count matching."""
        await self.flush()
        conds = []
        for col, value in (
            (executions.c.integration, f.integration),
            (executions.c.operation, f.operation),
            (executions.c.status, f.status),
            (executions.c.credential_id, f.credential_id),
            (executions.c.approval_id, f.approval_id),
            (executions.c.caller, f.caller),
            (executions.c.request_id, f.request_id),
        ):
            if value is not None:
                conds.append(col == value)
        if f.since is not None:
            conds.append(executions.c.started_at >= f.since)
        if f.until is not None:
            conds.append(executions.c.started_at < f.until)
        async with self._engine.connect() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(executions).where(*conds))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(executions)
                    .where(*conds)
                    .order_by(executions.c.started_at.desc(), executions.c.id)
                    .limit(max(1, min(f.limit, 500)))
                    .offset(max(0, f.offset))
                )
            ).all()
        return [_row_json(r) for r in rows], int(total)

    async def get(self, execution_id: str) -> dict[str, Any] | None:
        """One record with its connector ``logs`` (a list of lines) and the ``files`` it
        stored (FileReferences, ``ctx.files``), or ``None``."""
        await self.flush()
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(executions).where(executions.c.id == execution_id))).first()
        if row is None:
            return None
        m = row._mapping
        return {**_row_json(row), "logs": list(m["logs"] or []), "files": list(m["files"] or [])}

    async def prune(self) -> int:
        """Delete records older than the retention period; return how many. Run as the
        ``executions.retention`` job (the runtime's sweep, platform/jobs/), so with several
        replicas it runs about once per interval, not once per replica."""
        cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(executions).where(executions.c.started_at < cutoff))
        return int(result.rowcount or 0)
