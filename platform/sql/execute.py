"""Running a plan on a SQLAlchemy connection (DESIGN §5; docs/sql-runner.md).

Every engine's writes and every read but PostgreSQL's (those use ``pg_reads``) go
through ``execute_plan``: the server-side timeout, the engine's read-only mode, one
transaction, a server-side cursor fetching at most cap + 1 rows, and the rows converted
by ``values.json_rows``. This code is synchronous: it runs in ``run_sync``'s greenlet or,
for pymssql, in a worker thread.
"""

from __future__ import annotations

import functools
import math
import time as time_mod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from .mysql import set_mysql_session
from .plan import READ_KEYWORDS, Plan
from .types import SqlResult, TruncatedReason
from .values import RowBudget, column_names, json_rows_and_columns

if TYPE_CHECKING:
    from .engines import EngineHandle

__all__ = ["execute_plan"]


def _set_timeout(conn: Connection, handle: EngineHandle, timeout_ms: int) -> None:
    """Make the server stop any statement of this call after ``timeout_ms``
    (MariaDB/MySQL: ``mysql.set_mysql_session``)."""
    engine = handle.engine
    if engine == "postgres":
        if timeout_ms != handle.default_timeout_ms:
            # transaction-local: gone at COMMIT/ROLLBACK
            conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(timeout_ms)})
    elif engine == "sqlite":
        deadline = handle.sqlite_deadline(conn)
        if deadline is not None:
            deadline.at = time_mod.monotonic() + timeout_ms / 1000
    elif engine == "mssql":
        raw = getattr(conn.connection.driver_connection, "_conn", None)
        seconds = max(1, math.ceil(timeout_ms / 1000))
        if raw is not None and getattr(raw, "query_timeout", seconds) != seconds:
            raw.query_timeout = seconds


def _clear_timeout(conn: Connection, handle: EngineHandle) -> None:
    if handle.engine == "sqlite":
        deadline = handle.sqlite_deadline(conn)
        if deadline is not None:
            deadline.at = math.inf


def execute_plan(conn: Connection, handle: EngineHandle, plan: Plan) -> SqlResult:
    """Run ``plan`` on ``conn`` in one transaction: a read in the engine's read-only mode
    and rolled back, a write committed (all statements or none). Runs in ``run_sync``'s
    greenlet or, for pymssql, in a worker thread; driver exceptions propagate (the
    runner classifies them)."""
    engine = handle.engine
    trans = conn.begin()
    sqlite_query_only = False
    try:
        if engine == "mysql":
            set_mysql_session(conn, read=plan.read, timeout_ms=plan.timeout_ms)
        else:
            _set_timeout(conn, handle, plan.timeout_ms)
        if plan.read and engine == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = 1")
            sqlite_query_only = True
        elif engine == "sqlite":
            # sqlite3 opens transactions only before INSERT/UPDATE/DELETE; an explicit
            # BEGIN makes DDL part of the all-or-nothing write too.
            conn.exec_driver_sql("BEGIN")
        result = _run_statements(
            conn,
            plan,
            stream=engine != "mssql",
            discard_unread=engine == "mysql",
            before_next=functools.partial(set_mysql_session, conn, read=True, timeout_ms=plan.timeout_ms)
            if engine == "mysql" and plan.read
            else None,
        )
        if plan.read and engine == "mysql" and handle.kill_connect is not None:
            # MariaDB/MySQL: the read's ROLLBACK is left to the connection's check-in,
            # which the caller does not wait for (EngineHandle.run): closing a connection
            # rolls back its transaction, then the pool's reset gives a new session.
            return result
        if plan.read:
            trans.rollback()
        else:
            trans.commit()
        return result
    except BaseException:
        if trans.is_active:
            trans.rollback()
        raise
    finally:
        _clear_timeout(conn, handle)
        if sqlite_query_only and not conn.invalidated:
            conn.exec_driver_sql("PRAGMA query_only = 0")


def _run_statements(
    conn: Connection,
    plan: Plan,
    *,
    stream: bool,
    discard_unread: bool = False,
    before_next: Callable[[], None] | None = None,
) -> SqlResult:
    """Execute the plan's statements on ``conn`` and collect the capped result.

    ``discard_unread``: when the last statement of a read has rows past the cap, drop
    the connection instead of reading the rest off the wire (MariaDB/MySQL, whose
    protocol cannot stop a result early; dropping costs one reconnect, draining a
    million rows costs seconds). ``before_next`` runs before every statement but the
    first.
    """
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    reason: TruncatedReason | None = None
    affected: int | None = None
    fetch = plan.cap + 1
    last = len(plan.statements) - 1
    for i, (stmt, keyword) in enumerate(zip(plan.statements, plan.keywords, strict=True)):
        if i and before_next is not None:
            before_next()
        reads = keyword in READ_KEYWORDS
        if stream and (plan.read or reads):
            # Server-side cursor: only cap + 1 rows ever leave the server's buffers.
            c = conn.execution_options(
                stream_results=True, yield_per=RowBudget(plan.max_bytes).next_batch(fetch)
            )
            result = c.execute(stmt.clause, stmt.values)
        else:
            result = conn.execute(stmt.clause, stmt.values)
        try:
            if result.returns_rows:
                columns = column_names(list(result.keys()))
                rows, reason = _fetch_rows(result, columns, plan.cap, plan.max_bytes)
                if reason is not None and discard_unread and plan.read and i == last:
                    conn.invalidate()  # the server aborts the query when its writes fail
                    continue
            if not plan.read and (not reads or not result.returns_rows):
                count = result.rowcount
                if count is not None and count >= 0:
                    affected = (affected or 0) + count
        finally:
            if not conn.invalidated:
                result.close()
    return SqlResult.of(rows, columns, reason, rows_affected=None if plan.read else affected)


def _fetch_rows(
    result: Any, columns: list[str], cap: int, max_bytes: int
) -> tuple[list[dict[str, Any]], TruncatedReason | None]:
    """At most ``cap`` rows of ``result`` within ``max_bytes`` (``values.RowBudget``),
    fetched in batches sized by the budget, and why they stop: ``"rows"``, ``"bytes"``
    or None. Rows past the cap + 1 are never fetched."""
    budget = RowBudget(max_bytes)
    rows: list[dict[str, Any]] = []
    while True:
        size = budget.next_batch(cap + 1 - len(rows))
        batch = result.fetchmany(size)
        room = cap - len(rows)
        converted, by_column = json_rows_and_columns(columns, batch[:room])
        kept = budget.take(converted, by_column)
        rows.extend(kept)
        if len(kept) < len(converted):
            return rows, "bytes"
        if len(batch) > room:
            return rows, "rows"
        if len(batch) < size:
            return rows, None
