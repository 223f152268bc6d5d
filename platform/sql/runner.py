"""Running one SQL operation: caps, timeouts, read-only reads, atomic writes (DESIGN §5).

``run_sql`` checks the call's limits, builds the checked plan (plan.py: ``@name`` →
typed binds, refused keywords), and runs it under a client-side deadline: PostgreSQL
reads on the asyncpg read pool (pg_reads.py), everything else in one transaction on a
SQLAlchemy connection (execute.py). Reads are read-only and always rolled back; writes
are all-or-nothing; at most ``maxResultRows`` rows are fetched; ``queryTimeoutMs`` is
enforced by the server and by the deadline. ``check_sql_connection`` is Test connection's
``SELECT 1``. The full design, and why it is built this way: docs/sql-runner.md.
"""

from __future__ import annotations

import asyncio
import functools
import time as time_mod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import Connection

from bollard.platform.errors import SqlError

from .connection import DEFAULT_QUERY_TIMEOUT_MS
from .engines import EngineHandle
from .errors import to_sql_error
from .execute import execute_plan
from .pg_reads import pg_read
from .plan import build_plan
from .sqlite_reads import sqlite_read
from .types import SqlResult
from .values import DEFAULT_MAX_RESULT_BYTES

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "DEFAULT_MAX_RESULT_ROWS",
    "client_deadline_ms",
    "run_sql",
    "check_sql_connection",
]

DEFAULT_MAX_RESULT_ROWS = 1000

T = TypeVar("T")


def client_deadline_ms(timeout_ms: int) -> int:
    """The client-side deadline for a server timeout of ``timeout_ms``: 10% later, at
    least 200 ms and at most 2 s, so the server's cancellation normally wins."""
    return timeout_ms + min(max(timeout_ms // 10, 200), 2000)


def _limit(value: Any, default: int, what: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SqlError("config_error", f"security.{what} must be a positive integer")
    return int(value)


async def run_sql(
    engine_handle: EngineHandle,
    *,
    query: str,
    operation_type: str,
    schema: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    security: Mapping[str, Any] | None,
    read_only_connection: bool,
    max_rows_ceiling: int | None = None,
    max_bytes_ceiling: int | None = None,
) -> SqlResult:
    """Run one SQL operation and return its capped, JSON-friendly result.

    ``operation_type``: ``"read"`` or ``"write"``. ``schema``: the operation's
    parameters JSON Schema (types the binds). ``params``: validated caller values
    (omitted ones bind as typed NULLs). ``security``: ``{maxResultRows (rows, default
    1000), maxResultBytes (bytes, default 5 MiB), queryTimeoutMs (ms, default 30000)}``;
    ``max_rows_ceiling`` (rows) and ``max_bytes_ceiling`` (bytes) are the operator's
    ceilings. ``read_only_connection``: the manifest's ``sqlConnectionConfig.readOnly``.
    A result cut by the row cap or the byte budget says ``truncated`` with
    ``truncated_reason`` ``"rows"``/``"bytes"``.

    Raises SqlError with code ``read_only``, ``timeout``, ``sql_error``,
    ``connection_failed``, ``invalid_params`` or ``config_error``; a failed statement's
    message is Bollard's, with the error class and SQLSTATE/driver code, never the
    driver's text (errors.py; DESIGN §5, §8).
    """
    if operation_type not in ("read", "write"):
        raise SqlError("config_error", f"operationType must be read or write, not {operation_type!r}")
    read = operation_type == "read"
    if not read and read_only_connection:
        raise SqlError(
            "read_only",
            "this connection is read-only (sqlConnectionConfig.readOnly); write operations are refused",
        )
    sec = security or {}
    cap = _limit(sec.get("maxResultRows"), DEFAULT_MAX_RESULT_ROWS, "maxResultRows")
    if max_rows_ceiling is not None:
        cap = min(cap, max_rows_ceiling)
    max_bytes = _limit(sec.get("maxResultBytes"), DEFAULT_MAX_RESULT_BYTES, "maxResultBytes")
    if max_bytes_ceiling is not None:
        max_bytes = min(max_bytes, max_bytes_ceiling)
    timeout_ms = _limit(sec.get("queryTimeoutMs"), DEFAULT_QUERY_TIMEOUT_MS, "queryTimeoutMs")

    engine = engine_handle.engine
    plan = build_plan(
        engine, query, schema, params, read=read, cap=cap, timeout_ms=timeout_ms, max_bytes=max_bytes
    )
    if read and engine == "postgres":
        return await _run_with_deadline(
            engine_handle,
            functools.partial(pg_read, handle=engine_handle, plan=plan),
            timeout_ms=timeout_ms,
            deadline_ms=client_deadline_ms(timeout_ms),
            pg_read=True,
        )
    if read and engine == "sqlite" and engine_handle.async_engine is not None:
        # one thread hand-off for the whole read (sqlite_reads.py)
        dialect = engine_handle.async_engine.dialect
        return await _run_with_deadline(
            engine_handle,
            functools.partial(sqlite_read, plan=plan, dialect=dialect, cache=engine_handle.compiled_cache),
            timeout_ms=timeout_ms,
            deadline_ms=client_deadline_ms(timeout_ms),
            sqlite=True,
        )
    return await _run_with_deadline(
        engine_handle,
        functools.partial(execute_plan, handle=engine_handle, plan=plan),
        timeout_ms=timeout_ms,
        deadline_ms=client_deadline_ms(timeout_ms),
    )


@overload
async def _run_with_deadline(
    handle: EngineHandle,
    fn: Callable[[Connection], T],
    *,
    timeout_ms: int,
    deadline_ms: int,
    pg_read: Literal[False] = False,
    sqlite: bool = False,
) -> T: ...


@overload
async def _run_with_deadline(
    handle: EngineHandle,
    fn: Callable[[Any], Awaitable[T]],
    *,
    timeout_ms: int,
    deadline_ms: int,
    pg_read: Literal[True],
    sqlite: Literal[False] = False,
) -> T: ...


async def _run_with_deadline(
    handle: EngineHandle,
    fn: Any,
    *,
    timeout_ms: int,
    deadline_ms: int,
    pg_read: bool = False,
    sqlite: bool = False,
) -> Any:
    """``handle.run(fn)`` (or ``run_read``, PostgreSQL's read pool, when ``pg_read``;
    ``run_sqlite_read`` when ``sqlite``) under a client-side deadline (ms); errors
    become SqlError."""
    try:
        async with asyncio.timeout(deadline_ms / 1000):
            if pg_read:
                return await handle.run_read(fn)
            if sqlite:
                return await handle.run_sqlite_read(fn)
            return await handle.run(fn)
    except SqlError:
        raise
    except TimeoutError:
        raise SqlError(
            "timeout", f"the query did not finish within {timeout_ms} ms and was cancelled"
        ) from None
    except Exception as exc:
        err = to_sql_error(exc, handle.secrets, target=handle.target)
        if err.code == "timeout" and isinstance(err.details, dict):
            d = err.details
            ident = str(d.get("errorClass"))
            if d.get("sqlstate"):
                ident += f", SQLSTATE {d['sqlstate']}"
            if d.get("driverCode") is not None:
                ident += f", error {d['driverCode']}"
            err = SqlError(
                "timeout",
                f"the query did not finish within {timeout_ms} ms and the server cancelled it ({ident})",
                details=d,
            )
        raise err from None


async def check_sql_connection(
    engine_handle: EngineHandle, *, timeout_ms: int = 10_000
) -> list[dict[str, Any]]:
    """Connect and run ``SELECT 1`` within ``timeout_ms`` (ms).

    Returns the steps tried, in order: ``[{"name": "connect" | "query" | "role", "ok":
    bool, "durationMs": int, "message": str}]``; a failed connect ends the list. On
    PostgreSQL without ``allow_privileged_roles`` the ``role`` step says whether the
    connection's role was refused as privileged (roles.py; then no query runs). Never
    raises for connection problems; messages carry no password.
    """
    steps: list[dict[str, Any]] = []
    started = time_mod.monotonic()
    marks: dict[str, float] = {}

    def probe(conn: Connection) -> None:
        marks["connected"] = time_mod.monotonic()
        conn.exec_driver_sql("SELECT 1").scalar()
        marks["queried"] = time_mod.monotonic()

    def ms(a: float, b: float) -> int:
        return max(0, round((b - a) * 1000))

    error: SqlError | None = None
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            await engine_handle.run(probe)
    except SqlError as exc:
        error = exc
    except TimeoutError:
        error = SqlError("timeout", f"no answer within {timeout_ms} ms")
    except Exception as exc:
        error = to_sql_error(exc, engine_handle.secrets)
    now = time_mod.monotonic()
    connected = marks.get("connected")
    if (
        error is not None
        and isinstance(error.details, dict)
        and error.details.get("reason") == "privileged_role"
    ):
        return [
            {
                "name": "connect",
                "ok": True,
                "durationMs": ms(started, now),
                "message": f"connected to {engine_handle.target}",
            },
            {"name": "role", "ok": False, "durationMs": 0, "message": error.message},
        ]
    if connected is None:
        steps.append(
            {
                "name": "connect",
                "ok": False,
                "durationMs": ms(started, now),
                "message": error.message if error else "not connected",
            }
        )
        return steps
    steps.append(
        {
            "name": "connect",
            "ok": True,
            "durationMs": ms(started, connected),
            "message": f"connected to {engine_handle.target}",
        }
    )
    queried = marks.get("queried")
    steps.append(
        {
            "name": "query",
            "ok": queried is not None and error is None,
            "durationMs": ms(connected, queried or now),
            "message": "SELECT 1 succeeded"
            if queried is not None and error is None
            else (error.message if error else "SELECT 1 failed"),
        }
    )
    if engine_handle.engine == "postgres" and not engine_handle.allow_privileged_roles and queried:
        steps.append(
            {
                "name": "role",
                "ok": True,
                "durationMs": 0,
                "message": "the role is no superuser and holds no server-file, program or signal role",
            }
        )
    return steps


# Not a pytest test, despite the name (the API's Test-connection feature).
