"""SQLite reads in one thread hand-off (DESIGN §5; performance issue 15).

Through SQLAlchemy + aiosqlite a 100-row read cost ~8 thread hand-offs (BEGIN, PRAGMA
query_only on and off, execute, each fetchmany, ROLLBACK), each a trip through the
event loop's self-pipe: 3.6× raw aiosqlite returning dicts. Here a read is one function
run in a worker thread on a plain ``sqlite3`` connection: begin, the plan's statements
with the same capped, budgeted fetch as every other engine (``execute._fetch_rows``),
rollback.

The read connections are this module's own, one per pool slot, opened like the
engine's (the path checked again before and after opening, ``sqlite.py``), with
``PRAGMA query_only = 1`` for their whole life (a read may not run PRAGMA: plan.py) and
the progress-handler deadline (``SqliteDeadline``); a pooled connection checks the path
again before each read (a file swapped for a symlink is refused on the next read, not only
on the next open). Writes keep the SQLAlchemy engine.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect

from .execute import _fetch_rows  # the one capped, budgeted fetch of every engine
from .placeholders import BoundStatement
from .plan import Plan
from .sqlite import _SQLITE_PROGRESS_STEPS, SqliteDeadline, _reopen_check
from .types import SqlResult, TruncatedReason
from .values import column_names

__all__ = ["SqliteReadPool", "sqlite_read"]

T = TypeVar("T")


class _ReadConnection:
    """A read-only ``sqlite3`` connection and its progress-handler deadline."""

    def __init__(self, path: Path, field: str, busy_s: float) -> None:
        _reopen_check(path, field)
        self.conn = sqlite3.connect(str(path), timeout=busy_s, isolation_level=None, check_same_thread=False)
        try:
            _reopen_check(path, field)  # swapped while opening: the window is this short
            self.deadline = SqliteDeadline()
            self.conn.set_progress_handler(self.deadline.expired, _SQLITE_PROGRESS_STEPS)
            self.conn.execute("PRAGMA query_only = 1")
        except BaseException:
            self.conn.close()
            raise


class SqliteReadPool:
    """At most ``size`` read connections of one database file, each used by one thread
    at a time; ``run(fn)`` calls ``fn(conn, deadline)`` in a worker thread (one hand-off
    per read). ``field`` names the path's source in errors; ``busy_s`` (seconds) bounds
    waits for a locked database. A call cancelled while its thread runs keeps its slot
    until the thread returns (the deadline aborts the statement)."""

    def __init__(self, path: Path, *, field: str, size: int, busy_s: float) -> None:
        self.path = path
        self.field = field
        self.busy_s = busy_s
        self._idle: list[_ReadConnection] = []
        self._lock = threading.Lock()
        self._slots = asyncio.Semaphore(size)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="bollard-sqlite-read")
        self._closed = False

    def _call(self, fn: Callable[[sqlite3.Connection, SqliteDeadline], T]) -> T:
        with self._lock:
            rc = self._idle.pop() if self._idle else None
        if rc is not None:
            try:  # every read, not only each open: a file swapped for a link is refused at once
                _reopen_check(self.path, self.field)
            except BaseException:
                rc.conn.close()
                raise
        else:
            rc = _ReadConnection(self.path, self.field, self.busy_s)
        ok = False
        try:
            result = fn(rc.conn, rc.deadline)
            ok = True
            return result
        finally:
            rc.deadline.at = math.inf
            if ok and not self._closed and not rc.conn.in_transaction:
                with self._lock:
                    self._idle.append(rc)
            else:  # a failed read's connection is not trusted again
                rc.conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection, SqliteDeadline], T]) -> T:
        if self._closed:
            raise RuntimeError("the sqlite read pool is closed")
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def settle(done: Future[T]) -> None:  # on the loop: one wake-up per read
            self._slots.release()
            if waiter.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(done.result())

        try:
            future = self._executor.submit(self._call, fn)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
        try:
            return await waiter
        except asyncio.CancelledError:
            future.cancel()  # not started yet: it never runs (its slot is released by settle)
            raise

    async def close(self) -> None:
        """Close the idle connections; those in use close when their read returns."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for rc in idle:
            rc.conn.close()


def _compiled(
    cache: Any, dialect: Dialect, stmt: BoundStatement
) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]:
    """The statement as sqlite (qmark) SQL and, per position, its bind name and the
    type's bind processor (what SQLAlchemy applies: dates to text, booleans to 0/1)."""
    hit = cache.get(stmt.clause)
    if hit is None:
        compiled = stmt.clause.compile(dialect=dialect)
        binds = [
            (name, compiled.binds[name].type.bind_processor(dialect)) for name in compiled.positiontup or ()
        ]
        hit = (compiled.string, binds)
        cache[stmt.clause] = hit
    sql: str = hit[0]
    procs: list[tuple[str, Callable[[Any], Any] | None]] = hit[1]
    return sql, procs


def sqlite_read(
    conn: sqlite3.Connection, deadline: SqliteDeadline, *, plan: Plan, dialect: Dialect, cache: Any
) -> SqlResult:
    """Run the read ``plan`` on ``conn`` (in a worker thread): one transaction, rolled
    back; each statement's rows capped and budgeted like every engine's; the result of
    the last statement that returns rows. sqlite3 exceptions propagate (the runner
    classifies them: ``SQLITE_INTERRUPT`` is the deadline)."""
    deadline.at = time.monotonic() + plan.timeout_ms / 1000
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    reason: TruncatedReason | None = None
    conn.execute("BEGIN")
    try:
        for stmt in plan.statements:
            sql, binds = _compiled(cache, dialect, stmt)
            args = [p(stmt.values[n]) if p is not None else stmt.values[n] for n, p in binds]
            cursor = conn.execute(sql, args)
            try:
                if cursor.description is not None:
                    columns = column_names([d[0] for d in cursor.description])
                    rows, reason = _fetch_rows(cursor, columns, plan.cap, plan.max_bytes)
            finally:
                cursor.close()
    finally:
        deadline.at = math.inf  # the rollback itself must not be interrupted
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return SqlResult.of(rows, columns, reason)
