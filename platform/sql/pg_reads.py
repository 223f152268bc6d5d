"""PostgreSQL reads: asyncpg directly on a read pool of their own (DESIGN §5).

``ReadPool`` is an ``asyncpg.Pool`` per (integration, credential), opened on the first
read: its sessions start with the integration's ``statement_timeout`` and
``default_transaction_read_only = on``; after each read, off the caller's path,
``READ_RESET`` rolls the transaction back and resets the session before the connection
is handed out again; idle connections close after 5 minutes. ``pg_read`` runs one read
on such a connection: ``BEGIN READ ONLY`` (plus ``SET LOCAL statement_timeout`` when the
call lowers it), then per statement a cursor whose batches stop at cap + 1 rows and at
the byte budget (``values.RowBudget``). docs/sql-runner.md says why it is built this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bollard.platform.errors import SqlError

from .placeholders import BoundStatement
from .plan import Plan
from .types import SqlResult, TruncatedReason
from .values import RowBudget, column_names, json_rows_and_columns

if TYPE_CHECKING:
    from .engines import EngineHandle

__all__ = ["READ_RESET", "ReadPool", "pg_read", "reported_read_only"]

T = TypeVar("T")

logger = logging.getLogger("bollard.sql")

# How long (s) a read interrupted by its deadline may take to have its query cancelled
# on the server before the backend is terminated from another connection.
CANCEL_WAIT_S = 5.0

# Read-pool connections idle this long (seconds) are closed.
_READ_POOL_IDLE_S = 300.0


class ReadPool:
    """The PostgreSQL read pool of one engine: at most ``max_size`` connections made
    with ``connect`` (``asyncpg.connect`` keyword arguments, read when the pool opens).

    ``connect_error`` turns a failure to connect into the SqlError callers see; ``init``
    runs on each new connection and may refuse it by raising (``roles.check_pg_role``);
    the ``asyncpg.Pool`` itself opens on the first ``run``.
    """

    def __init__(
        self,
        connect: dict[str, Any],
        *,
        max_size: int,
        target: str,
        connect_error: Callable[[BaseException], SqlError],
        init: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.connect = connect
        self._init = init
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
                    init=self._init,
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
        connection out again. When ``fn`` was interrupted (cancelled, past its deadline)
        the reset first waits for the server to acknowledge asyncpg's cancel request, so
        the slot is free only once the backend is idle; if it is not within
        ``CANCEL_WAIT_S`` the backend is terminated from another connection and waited
        for (``pg_terminate_backend``). The connection is discarded when ``fn`` raised
        anything else (a broken protocol), when the reset fails, or when the server
        reported ``default_transaction_read_only`` as anything but ``on``. Raises
        SqlError ``connection_failed``/``timeout`` when no connection can be made;
        exceptions from ``fn`` propagate unchanged.
        """
        pool = self._pool or await self._open()
        try:
            con = await pool.acquire()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._connect_error(exc) from None
        sound = interrupted = False
        try:
            result = await fn(con)
            sound = True
            return result
        except BaseException as exc:
            sound = _is_database_error(exc)
            # past the client deadline: asyncpg has sent the server a cancel request
            interrupted = isinstance(exc, asyncio.CancelledError | TimeoutError)
            raise
        finally:
            if (sound or interrupted) and not con.is_closed() and reported_read_only(con) is not False:
                task = asyncio.get_running_loop().create_task(
                    _reset_and_release(pool, con, self.connect if interrupted else None)
                )
                self._releases.add(task)
                task.add_done_callback(self._releases.discard)
            else:
                con.terminate()  # never pooled again; release only frees its slot
                await asyncio.shield(pool.release(con))

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


async def _reset_and_release(pool: Any, con: Any, interrupted: dict[str, Any] | None = None) -> None:
    """``READ_RESET`` on ``con``, then back to ``pool``. ``interrupted``: the pool's
    connect arguments when the read was interrupted: the reset then waits at most
    ``CANCEL_WAIT_S`` for the cancelled query, after which the backend is terminated
    (and waited for) before the slot is freed."""
    pid = con.get_server_pid()
    try:
        await con.execute(READ_RESET, timeout=CANCEL_WAIT_S if interrupted is not None else None)
    except asyncio.CancelledError:
        con.terminate()  # never pooled again
        raise
    except Exception:  # noqa: BLE001 - a connection that cannot be reset is dropped
        con.terminate()
        if interrupted is not None:
            await _terminate_backend(interrupted, pid)
    finally:
        with contextlib.suppress(Exception):
            await pool.release(con)


async def _terminate_backend(connect: dict[str, Any], pid: int) -> None:
    """Terminate backend ``pid`` from a new connection and wait (up to
    ``CANCEL_WAIT_S``) until it is gone (PostgreSQL 14+ ``pg_terminate_backend(pid,
    timeout)``; a role may terminate its own sessions)."""
    import asyncpg

    try:
        async with asyncio.timeout(2 * CANCEL_WAIT_S):
            settings = {"application_name": "bollard-cancel"}
            ctl = await asyncpg.connect(**{**connect, "server_settings": settings})
            try:
                await ctl.execute("SELECT pg_terminate_backend($1, $2)", pid, int(CANCEL_WAIT_S * 1000))
            finally:
                await ctl.close()
    except Exception as exc:  # noqa: BLE001 - best effort; the socket is closed already
        logger.warning("could not terminate the timed-out backend %s: %s", pid, type(exc).__name__)


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


def _adaptive_batches_available() -> bool:
    """Whether asyncpg's cursor iterator keeps its batch size in the (private)
    ``_prefetch`` slot, which ``_pg_fetch`` changes between round trips (asyncpg
    0.29–0.32). Without it every batch is ``FIRST_BATCH_ROWS`` rows."""
    from asyncpg.cursor import CursorIterator

    return "_prefetch" in getattr(CursorIterator, "__slots__", ())


_ADAPTIVE_BATCHES = _adaptive_batches_available()


def _buffer_drain_available() -> bool:
    """Whether asyncpg's cursor iterator keeps the rows of its last round trip in the
    (private) deque ``_buffer``, which ``_pg_fetch`` empties itself (asyncpg 0.29–0.32).
    Without it every row is one ``__anext__``."""
    from asyncpg.cursor import CursorIterator

    return "_buffer" in getattr(CursorIterator, "__slots__", ())


_DRAIN_BUFFER = _buffer_drain_available()


async def _pg_fetch(
    con: Any, sql: str, args: list[Any], cap: int, max_bytes: int
) -> tuple[list[dict[str, Any]], list[str] | None, TruncatedReason | None]:
    """Run one statement and return its rows (at most ``cap``, JSON-friendly, within
    ``max_bytes``), its column names (None when it returns no result set) and why it
    was cut: ``"rows"``, ``"bytes"`` or None.

    A cursor in the read's transaction: the first round trip is Bind/Execute of at most
    ``FIRST_BATCH_ROWS`` rows (fewer when the cap is lower), each later one an Execute
    of as many rows as the byte budget has room for, judged by the rows so far; rows
    are converted and counted batch by batch, so neither rows past the cap nor a batch
    much past the budget is ever fetched (asyncpg caches the prepared statement).
    """
    budget = RowBudget(max_bytes)
    size = budget.next_batch(cap + 1)
    it = con.cursor(sql, *args, prefetch=size).__aiter__()
    rows: list[dict[str, Any]] = []
    columns: list[str] | None = None
    while True:
        batch: list[Any] = []
        done = False
        try:
            while len(batch) < size:
                batch.append(await it.__anext__())
                if _DRAIN_BUFFER:
                    # the rest of this round trip's rows, already in the iterator's
                    # buffer: taken at once rather than one awaited __anext__ each (a
                    # tenth of a 100-row read); the same round trips either way
                    buffered, want = it._buffer, size - len(batch)
                    if len(buffered) <= want:
                        batch.extend(buffered)
                        buffered.clear()
                    else:
                        batch.extend(buffered.popleft() for _ in range(want))
        except StopAsyncIteration:
            done = True
        if batch and columns is None:
            columns = column_names(list(batch[0].keys()))
        if columns is not None:
            room = cap - len(rows)
            converted, by_column = json_rows_and_columns(columns, batch[:room])
            kept = budget.take(converted, by_column)
            rows.extend(kept)
            if len(kept) < len(converted):
                return rows, columns, "bytes"
            if len(batch) > room:
                return rows, columns, "rows"
        if done:
            break
        size = budget.next_batch(cap + 1 - len(rows))
        if _ADAPTIVE_BATCHES:
            it._prefetch = size
    if columns is None:
        state = getattr(it, "_state", None)
        attrs = state._get_attributes() if state is not None else (await con.prepare(sql)).get_attributes()
        columns = column_names([a.name for a in attrs]) if attrs else None
    return rows, columns, None


async def pg_read(con: Any, handle: EngineHandle, plan: Plan) -> SqlResult:
    """A read on PostgreSQL on ``con``, a connection of the handle's ``ReadPool``.

    ``BEGIN READ ONLY`` (with ``SET LOCAL statement_timeout`` in the same round trip
    when the call's timeout differs from the pool's), then each statement through
    ``_pg_fetch`` (at most cap + 1 rows, within the byte budget; each statement after
    the first gets what is left of the timeout). The transaction is left open:
    ``ReadPool.run`` rolls it back together with the session reset before the
    connection is used again (docs/sql-runner.md). The statement text and its typed binds are SQLAlchemy's own
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
        await con.reload_schema_state()  # a cursor's failure leaves asyncpg's cache as it was
        return await _pg_read_statements(con, handle, plan, begin)


async def _pg_read_statements(con: Any, handle: EngineHandle, plan: Plan, begin: str) -> SqlResult:
    started = time.monotonic()
    await con.execute(begin)
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    reason: TruncatedReason | None = None
    for i, stmt in enumerate(plan.statements):
        if i:
            # A statement may have switched the timeout off (`set_config('statement_timeout',
            # '0', true)`): each later one gets what is left of the call's own.
            left = max(1, plan.timeout_ms - int((time.monotonic() - started) * 1000))
            await con.execute(f"SET LOCAL statement_timeout = {left}")
        sql, args = _pg_compiled(handle, stmt)
        batch, names, cut = await _pg_fetch(con, sql, args, plan.cap, plan.max_bytes)
        if names is None:
            continue  # no result set (a statement that returns nothing)
        rows, columns, reason = batch, names, cut
    return SqlResult.of(rows, columns, reason)
