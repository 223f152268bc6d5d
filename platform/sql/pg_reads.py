"""PostgreSQL reads: asyncpg directly on a read pool of their own (DESIGN §5).

``ReadPool`` is an ``asyncpg.Pool`` per (integration, credential), opened on the first
read: its sessions start with the integration's ``statement_timeout`` and
``default_transaction_read_only = on``; after each read, off the caller's path,
``READ_RESET`` rolls the transaction back and resets the session before the connection
is handed out again; idle connections close after 5 minutes. ``pg_read`` runs one read
on such a connection: ``BEGIN READ ONLY`` (plus ``SET LOCAL statement_timeout`` when the
call lowers it), then per statement one Bind/Execute/Sync whose row limit of cap + 1
stops the portal. docs/sql-runner.md says why it is built this way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bollard.platform.errors import SqlError

from .placeholders import BoundStatement
from .plan import Plan
from .types import SqlResult
from .values import column_names, json_rows

if TYPE_CHECKING:
    from .engines import EngineHandle

__all__ = ["READ_RESET", "ReadPool", "pg_read", "reported_read_only"]

T = TypeVar("T")

# Read-pool connections idle this long (seconds) are closed.
_READ_POOL_IDLE_S = 300.0


class ReadPool:
    """The PostgreSQL read pool of one engine: at most ``max_size`` connections made
    with ``connect`` (``asyncpg.connect`` keyword arguments, read when the pool opens).

    ``connect_error`` turns a failure to connect into the SqlError callers see; the
    ``asyncpg.Pool`` itself opens on the first ``run``.
    """

    def __init__(
        self,
        connect: dict[str, Any],
        *,
        max_size: int,
        target: str,
        connect_error: Callable[[BaseException], SqlError],
    ) -> None:
        self.connect = connect
        self._max_size = max_size
        self._target = target
        self._connect_error = connect_error
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._releases: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pool(self) -> Any:
        """The ``asyncpg.Pool``, or None until the first read (and after ``close``)."""
        return self._pool

    async def _open(self) -> Any:
        import asyncpg

        async with self._lock:
            if self._pool is None:
                if self._closed:
                    raise SqlError("connection_failed", f"the engine for {self._target} was closed")
                pool = asyncpg.create_pool(
                    min_size=0,
                    max_size=self._max_size,
                    reset=_no_reset,
                    max_inactive_connection_lifetime=_READ_POOL_IDLE_S,
                    **self.connect,
                )
                await pool  # min_size 0: opens no connection yet
                self._pool = pool
            return self._pool

    async def run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Await ``fn(connection)`` with an asyncpg connection of the pool.

        ``fn`` may leave a transaction open (``pg_read`` does). Afterwards, in the
        background once the result has been returned, ``READ_RESET`` rolls it back and
        resets the session to its state at connect; only then does the pool hand the
        connection out again. The connection is discarded instead when ``fn`` raised
        anything but a database error (cancelled, past its deadline, broken protocol),
        when the reset fails, or when the server reported ``default_transaction_read_only``
        as anything but ``on``. Raises SqlError ``connection_failed``/``timeout`` when no
        connection can be made; exceptions from ``fn`` propagate unchanged.
        """
        pool = self._pool or await self._open()
        try:
            con = await pool.acquire()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._connect_error(exc) from None
        sound = False
        try:
            result = await fn(con)
            sound = True
            return result
        except BaseException as exc:
            sound = _is_database_error(exc)
            raise
        finally:
            if not sound or reported_read_only(con) is False:
                con.terminate()  # never pooled again; release only frees its slot
                await asyncio.shield(pool.release(con))
            else:
                task = asyncio.get_running_loop().create_task(_reset_and_release(pool, con))
                self._releases.add(task)
                task.add_done_callback(self._releases.discard)

    async def quiesce(self) -> None:
        """Wait until the connections returned so far are reset and back in the pool."""
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    async def close(self) -> None:
        """Refuse new reads, wait for the resets, and close the pool (within 10 s, else
        terminate it)."""
        self._closed = True
        await self.quiesce()
        async with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except Exception:  # noqa: BLE001 - a dead server must not stop shutdown
                pool.terminate()


def _is_database_error(exc: BaseException) -> bool:
    """An error the server reported for a statement (the connection is still sound)."""
    import asyncpg

    return isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, asyncpg.exceptions.PostgresConnectionError
    )


# Sent as one simple query (one round trip) before a read connection is pooled again:
# the read's transaction rolled back, and what could outlive a transaction (advisory
# locks, WITH HOLD cursors, LISTEN, role, session settings) back to the state at
# connect (RESET ALL restores the startup packet's server_settings; it leaves role and
# session_authorization alone, which SET SESSION AUTHORIZATION DEFAULT resets, as any
# user may).
READ_RESET = (
    "ROLLBACK; SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; "
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL;"
)


async def _no_reset(con: Any) -> None:
    """The read pool's own reset (asyncpg ``Pool(reset=...)``): ``READ_RESET`` has run."""


async def _reset_and_release(pool: Any, con: Any) -> None:
    try:
        await con.execute(READ_RESET)
    except asyncio.CancelledError:
        con.terminate()  # never pooled again
        raise
    except Exception:  # noqa: BLE001 - a connection that cannot be reset is dropped
        con.terminate()
    finally:
        with contextlib.suppress(Exception):
            await pool.release(con)


def reported_read_only(con: Any) -> bool | None:
    """``default_transaction_read_only`` as the server last reported it on ``con``
    (PostgreSQL 14+ reports every change, before the end of the call that made it), or
    None when the server does not report it."""
    try:
        value: object = con.get_settings().default_transaction_read_only
    except AttributeError:
        return None
    return value == "on"


# --- one read on a read-pool connection ----------------------------------------------


def _pg_compiled(handle: EngineHandle, stmt: BoundStatement) -> tuple[str, list[Any]]:
    """The statement as asyncpg SQL (``$1::TYPE`` binds) and its positional arguments."""
    cache = handle.compiled_cache
    hit = cache.get(stmt.clause)
    if hit is None:
        assert handle.async_engine is not None
        compiled = stmt.clause.compile(dialect=handle.async_engine.dialect)
        hit = (compiled.string, list(compiled.positiontup or ()))
        cache[stmt.clause] = hit
    sql, names = hit
    return sql, [stmt.values[n] for n in names]


def _capped_fetch_available() -> bool:
    """Whether asyncpg has the (private) ``Connection._execute(query, args, limit,
    timeout)`` and ``_get_statement`` that ``_pg_fetch`` uses (asyncpg 0.29–0.32; its own
    ``fetchrow`` is ``_execute(..., 1, ...)``). Without them reads fall back to a
    cursor, which costs a round trip more for an empty result."""
    import inspect

    import asyncpg

    execute = getattr(asyncpg.Connection, "_execute", None)
    get_statement = getattr(asyncpg.Connection, "_get_statement", None)
    if execute is None or get_statement is None:
        return False
    try:
        names = list(inspect.signature(execute).parameters)[1:5]
    except (TypeError, ValueError):
        return False
    return names == ["query", "args", "limit", "timeout"]


_CAPPED_FETCH = _capped_fetch_available()


async def _pg_fetch(con: Any, sql: str, args: list[Any], limit: int) -> tuple[list[Any], list[str] | None]:
    """Run one statement and return at most ``limit`` rows and its column names (None
    when it returns no result set).

    One Bind/Execute/Sync round trip with Execute's row limit: the portal stops after
    ``limit`` rows, so the server computes no row past them (asyncpg prepares the
    statement once per connection and caches it).
    """
    if _CAPPED_FETCH:
        records = await con._execute(sql, args, limit, None)
        if records:
            return records, list(records[0].keys())
        state = await con._get_statement(sql, None)  # cached by _execute just now
        attrs = state._get_attributes()
    else:
        records = []
        async for record in con.cursor(sql, *args, prefetch=limit):
            records.append(record)
            if len(records) >= limit:
                break
        if records:
            return records, list(records[0].keys())
        attrs = (await con.prepare(sql)).get_attributes()
    return records, [a.name for a in attrs] if attrs else None


async def pg_read(con: Any, handle: EngineHandle, plan: Plan) -> SqlResult:
    """A read on PostgreSQL on ``con``, a connection of the handle's ``ReadPool``.

    ``BEGIN READ ONLY`` (with ``SET LOCAL statement_timeout`` in the same round trip
    when the call's timeout differs from the pool's), then each statement in one round
    trip of at most cap + 1 rows. The transaction is left open: ``ReadPool.run`` rolls
    it back together with the session reset before the connection is used again
    (docs/sql-runner.md). The statement text and its typed binds are SQLAlchemy's own
    compilation.
    """
    from asyncpg.exceptions import InvalidCachedStatementError

    begin = "BEGIN READ ONLY"
    if plan.timeout_ms != handle.default_timeout_ms:
        begin += f"; SET LOCAL statement_timeout = {int(plan.timeout_ms)}"
    try:
        return await _pg_read_statements(con, handle, plan, begin)
    except InvalidCachedStatementError:
        # A schema change invalidated a statement asyncpg had prepared (it has dropped
        # its cache); the read changed nothing, so run it once more, re-prepared.
        await con.execute("ROLLBACK")
        return await _pg_read_statements(con, handle, plan, begin)


async def _pg_read_statements(con: Any, handle: EngineHandle, plan: Plan, begin: str) -> SqlResult:
    await con.execute(begin)
    rows: list[Any] = []
    columns: list[str] = []
    truncated = False
    for stmt in plan.statements:
        sql, args = _pg_compiled(handle, stmt)
        batch, names = await _pg_fetch(con, sql, args, plan.cap + 1)
        if names is None:
            continue  # no result set (a statement that returns nothing)
        columns = column_names(names)
        truncated = len(batch) > plan.cap
        rows = batch[: plan.cap] if truncated else batch
    return SqlResult(
        rows=json_rows(columns, rows),
        count=len(rows),
        truncated=truncated,
        rows_affected=None,
        columns=columns,
    )
