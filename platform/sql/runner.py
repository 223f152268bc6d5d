"""Running one SQL operation: caps, timeouts, read-only reads, atomic writes (DESIGN §5).

``run_sql`` compiles the manifest query (``@name`` → typed bind parameters), checks a
pooled connection out of the integration's ``EngineHandle``, and runs the statements in
one transaction:

- **reads** run in a read-only transaction where the engine has one (PostgreSQL
  ``BEGIN READ ONLY``; MariaDB/MySQL a read-only session, since DDL would commit a
  transaction-level READ ONLY away; SQLite ``PRAGMA query_only``) and always end in
  ROLLBACK, so a write in a read fails with ``read_only`` and changes nothing. A read
  may not run transaction or session control (``COMMIT``, ``SET``, ``PRAGMA``, …),
  which could end or loosen that transaction; leading keywords are read with the
  engine's comment rules (PostgreSQL's block comments nest; a MariaDB/MySQL statement
  may not start with an executable ``/*! … */`` comment). MariaDB/MySQL reads set the
  session read-only (and its time limit) again before each statement, since a stored
  function can switch it off and a session variable outlives the ROLLBACK. SQL Server
  has no read-only transaction: a read whose statements start with a data-changing
  keyword is refused, and the ROLLBACK undoes anything else.
- **PostgreSQL reads** use asyncpg directly on a read pool of their own (see
  ``EngineHandle.run_read``), two round trips on the caller's path: ``BEGIN READ ONLY``
  (with ``SET LOCAL statement_timeout`` when the call lowers the timeout), then per
  statement one Bind/Execute/Sync whose Execute row limit of cap + 1 stops the portal
  (asyncpg's statement cache keeps the Parse off later calls). The ROLLBACK, together
  with a session reset, is sent after the result has been handed back, and the pool
  gives the connection to no one before both are done. Why this and not less:

  * *One implicit transaction per read* (a session started with
    ``default_transaction_read_only = on``, one Bind/Execute/Sync, no BEGIN) would save
    the BEGIN, but it commits. A read-only transaction still lets a statement create,
    write and unlink large objects (``lo_from_bytea``, ``lo_put``, ``lo_unlink``,
    ``lo_import``) and ``NOTIFY`` (``pg_notify``), also from inside any function a
    SELECT calls, so no check of the query text can see it; only a rollback undoes
    those. Outside a transaction block a ``DO`` block or ``CALL``ed procedure may also
    ``COMMIT`` and go on in a new transaction. (tests/test_sql_pg_reads.py has these
    attacks.)
  * *Session state*: inside ``BEGIN READ ONLY``, ``set_config(…, false)`` (including
    through a function or ``UPDATE pg_settings``) is undone by the ROLLBACK, and
    ``SET``/``BEGIN``/``COMMIT``/``RESET`` are refused by keyword; the reset
    (``engines.READ_RESET``: advisory locks, held cursors, LISTEN, role, ``RESET ALL``
    back to the startup settings) covers what outlives a transaction. The sessions also
    start with ``default_transaction_read_only = on``, and a connection for which the
    server reports that setting as anything else is closed, not pooled.
  * *Timeouts*: ``statement_timeout`` is a startup setting of the pool's sessions (the
    engine, and so the pool, is rebuilt when ``queryTimeoutMs`` changes); a call with a
    lower timeout sets it transaction-locally in the BEGIN round trip. The client
    deadline still applies; a connection it interrupts is closed.
  * *Row cap*: the Execute row limit is the protocol's own; the statement text is never
    changed (no ``LIMIT`` appended), and rows past the cap are never computed.
- **writes** run all statements or none and report ``rows_affected``: the sum of the
  row counts of the data-changing statements (MariaDB/MySQL count matched rows).
  MariaDB/MySQL commit DDL (``CREATE``/``ALTER``/``DROP``) implicitly, so a write mixing
  DDL with other statements is not atomic there.
  ``readOnly: true`` on the connection refuses every write before connecting.
- **multi-statement queries**: on PostgreSQL, MariaDB/MySQL and SQLite the query is split
  at top-level ``;`` and the statements run one by one in the transaction; on SQL Server
  the query runs as one T-SQL batch (so ``@@ROWCOUNT`` works, as in Tale's protel
  manifest). The rows returned are those of the last statement that returns rows.
- **row cap**: ``security.maxResultRows`` (default 1000, clipped by the operator
  ceiling) rows are fetched plus one to detect truncation, through a server-side
  cursor / streamed result (PostgreSQL reads: Execute's row limit); the rest is never
  fetched. (MariaDB/MySQL's protocol has no
  way to stop a result early: a truncated read drops its connection rather than read
  the rest off the wire; a truncated write result is drained, unparsed.)
- **timeout**: ``security.queryTimeoutMs`` (default 30000) is enforced by the server
  (PostgreSQL ``statement_timeout``; MariaDB ``max_statement_time``; MySQL
  ``max_execution_time``, SELECT only; pymssql's query timeout, whole seconds; SQLite a
  progress handler) and by a client deadline a little later that cancels the call; a
  connection interrupted that way is discarded, so the next call gets a healthy one.

Values are returned JSON-friendly: dates, times and date-times as ISO 8601 strings,
intervals/``TIME`` durations as ``[-]HH:MM:SS[.ffffff]``, bytes as base64, UUIDs and other
objects as strings. **Decimal**: an int when it has no fraction digits (``NUMERIC(10,0)``),
a float when it has some and converts without changing its digits (``12.50`` → ``12.5``),
otherwise its exact string (``"12345678901234567890.12"``); non-finite values become
``"NaN"``/``"Infinity"``/``"-Infinity"``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import math
import time as time_mod
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import repeat
from typing import Any

from bollard.platform.errors import SqlError
from sqlalchemy import Connection, text

from .engines import DEFAULT_QUERY_TIMEOUT_MS, EngineHandle
from .errors import to_sql_error
from .placeholders import BoundStatement, CompiledQuery, compile_query
from .types import SqlResult

__all__ = [
    "DEFAULT_MAX_RESULT_ROWS",
    "client_deadline_ms",
    "json_rows",
    "run_sql",
    "test_sql_connection",
    "to_json_value",
]

DEFAULT_MAX_RESULT_ROWS = 1000
# Statements that only read; they are streamed (server-side cursor) and capped.
_READ_KEYWORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "PRAGMA", "DESCRIBE", "DESC"}
)
# Statements SQL Server reads must not start with (it has no read-only transaction).
_MSSQL_WRITE_KEYWORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "EXEC",
        "EXECUTE",
        "GRANT",
        "REVOKE",
        "DENY",
        "BULK",
        "SAVE",
    }
)
# Statements a read may not run on any engine: they end the read-only transaction or
# change its mode (`COMMIT; DELETE …`, `SET TRANSACTION READ WRITE`, `PRAGMA
# query_only = 0`), which would let a read write without approval.
_READ_FORBIDDEN = frozenset(
    {
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
        "SET",
        "RESET",
        "DISCARD",
        "PRAGMA",
        "LOCK",
        "UNLOCK",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "USE",
        "ATTACH",
        "DETACH",
        "VACUUM",
        "CHECKPOINT",
        # MySQL/MariaDB: a statement starting with an executable comment, whose text the
        # server may run (`/*!SET @@session.tx_read_only = 0, @x = */ (SELECT 1)`)
        "/*!",
    }
)
# SQLite statements no operation may run: they reach files outside the allowed folders.
_SQLITE_FORBIDDEN = frozenset({"ATTACH", "DETACH", "VACUUM"})
_INFO_SESSION = "bollard_session"  # MariaDB/MySQL: (access mode, timeout ms) last set


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


_SchemaKey = tuple[tuple[str, Any, Any], ...]


@functools.lru_cache(maxsize=512)
def _compile_cached(query: str, engine: str, key: _SchemaKey) -> CompiledQuery:
    schema = {
        "properties": {
            name: {"type": list(t) if isinstance(t, tuple) else t, "format": f} for name, t, f in key
        }
    }
    return compile_query(query, schema, engine=engine)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value if isinstance(value, str) else None


def _compile(query: str, engine: str, schema: Mapping[str, Any] | None) -> CompiledQuery:
    props = (schema or {}).get("properties") or {}
    # Only type and format matter for binding; descriptions do not split the cache.
    key = tuple(
        sorted(
            (str(k), _hashable(v.get("type")), _hashable(v.get("format")))
            for k, v in props.items()
            if isinstance(v, Mapping)
        )
    )
    return _compile_cached(query, engine, key)


# --- JSON-friendly values ------------------------------------------------------------

_PLAIN = (str, int, bool, type(None))


def _decimal(d: Decimal) -> Any:
    s = str(d)
    # Fast path: at most 15 characters means at most 15 significant digits, which a
    # float holds exactly (its repr gives the same digits back).
    if len(s) <= 15 and "E" not in s and "N" not in s and "I" not in s:
        return float(s) if "." in s else int(s)
    if not d.is_finite():
        return "NaN" if d.is_nan() else ("Infinity" if d > 0 else "-Infinity")
    if d.as_tuple().exponent == 0:
        return int(d)
    f = float(d)
    return f if Decimal(repr(f)) == d else str(d)


def _duration(td: timedelta) -> str:
    sign = "-" if td < timedelta(0) else ""
    td = abs(td)
    micros = td.microseconds
    total = td.days * 86400 + td.seconds
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return out + (f".{micros:06d}" if micros else "")


def to_json_value(value: Any) -> Any:
    """``value`` as something ``json.dumps`` accepts, following the module's rules."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return str(value)


def _column_names(keys: list[str]) -> list[str]:
    """Unique, non-empty column names: ``id, id`` → ``id, id_2``; blank → ``column_3``."""
    out: list[str] = []
    seen: set[str] = set()
    for i, k in enumerate(keys, start=1):
        base = k or f"column_{i}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        out.append(name)
    return out


_PLAIN_TYPES = frozenset(_PLAIN)
# One converter per Python type, for columns whose values all share that type.
_BY_TYPE: dict[type, Any] = {
    Decimal: _decimal,
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
    timedelta: _duration,
    uuid.UUID: str,
}


_NONE = type(None)


def _column_converter(values: tuple[Any, ...]) -> Any:
    """None when a column needs no conversion, else a function for its values."""
    kinds = set(map(type, values))
    if kinds <= _PLAIN_TYPES:
        return None
    nullable = _NONE in kinds
    kinds.discard(_NONE)
    if len(kinds) == 1:
        fast = _BY_TYPE.get(next(iter(kinds)))
        if fast is not None:
            return (lambda v: None if v is None else fast(v)) if nullable else fast
    return to_json_value


def json_rows(columns: list[str], batch: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows (sequences of ``len(columns)`` values) as JSON-friendly dicts keyed by
    ``columns``; converts column by column so plain columns (str, int, bool, None) cost
    nothing."""
    if not batch:
        return []
    cols: list[Any] = list(zip(*batch, strict=True))
    for i, col in enumerate(cols):
        conv = _column_converter(col)
        if conv is not None:
            cols[i] = list(map(conv, col))
    # zip called through map: every row has one value per column, and a keyword
    # argument (strict=) per row would cost a sixth of the conversion
    return list(map(dict, map(zip, repeat(columns), zip(*cols, strict=True))))


# --- the synchronous core (runs in run_sync's greenlet or in a worker thread) -----------


@dataclass(frozen=True)
class _Plan:
    statements: list[BoundStatement]
    keywords: tuple[str, ...]
    read: bool
    cap: int
    timeout_ms: int


def _set_timeout(conn: Connection, handle: EngineHandle, timeout_ms: int) -> None:
    """Make the server stop any statement of this call after ``timeout_ms``
    (MariaDB/MySQL: ``_set_mysql_session``)."""
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


def _set_mysql_session(conn: Connection, *, read: bool, timeout_ms: int) -> None:
    """The session's access mode and statement time limit (MariaDB ``max_statement_time``,
    MySQL ``max_execution_time``), in one statement (one round trip).

    Session-wide rather than ``START TRANSACTION READ ONLY``: DDL commits the current
    transaction implicitly and would escape a transaction-level mode, but a read-only
    session refuses it. Reads set both before each of their statements: a function the
    read calls can change either (``SET @@session.tx_read_only = 0`` in a stored
    function), no keyword check sees that, and the change outlives the read's ROLLBACK,
    so the next statement (DDL starts a new transaction) or a later read could write.
    Writes set them only when the connection's last known state differs, and every read
    forgets that state.
    """
    state = ("read only" if read else "read write", timeout_ms)
    if not read and conn.info.get(_INFO_SESSION) == state:
        return
    dialect: Any = conn.dialect
    if dialect.is_mariadb:
        version = tuple(v for v in dialect.server_version_info or () if isinstance(v, int))
        access = "tx_read_only" if version < (11, 1) else "transaction_read_only"
        sql = f"SET SESSION {access} = {int(read)}, SESSION max_statement_time = {int(timeout_ms) / 1000:.3f}"
    else:
        sql = (
            f"SET SESSION transaction_read_only = {int(read)}, SESSION max_execution_time = {int(timeout_ms)}"
        )
    conn.exec_driver_sql(sql)  # numbers only: nothing from the caller
    if read:
        conn.info.pop(_INFO_SESSION, None)
    else:
        conn.info[_INFO_SESSION] = state


def _clear_timeout(conn: Connection, handle: EngineHandle) -> None:
    if handle.engine == "sqlite":
        deadline = handle.sqlite_deadline(conn)
        if deadline is not None:
            deadline.at = math.inf


def _execute(conn: Connection, handle: EngineHandle, plan: _Plan) -> SqlResult:
    engine = handle.engine
    trans = conn.begin()
    sqlite_query_only = False
    try:
        if engine == "mysql":
            _set_mysql_session(conn, read=plan.read, timeout_ms=plan.timeout_ms)
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
            before_next=functools.partial(_set_mysql_session, conn, read=True, timeout_ms=plan.timeout_ms)
            if engine == "mysql" and plan.read
            else None,
        )
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
    plan: _Plan,
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
    truncated = False
    affected: int | None = None
    fetch = plan.cap + 1
    last = len(plan.statements) - 1
    for i, (stmt, keyword) in enumerate(zip(plan.statements, plan.keywords, strict=True)):
        if i and before_next is not None:
            before_next()
        reads = keyword in _READ_KEYWORDS
        if stream and (plan.read or reads):
            # Server-side cursor: only cap + 1 rows ever leave the server's buffers.
            c = conn.execution_options(stream_results=True, yield_per=fetch)
            result = c.execute(stmt.clause, stmt.values)
        else:
            result = conn.execute(stmt.clause, stmt.values)
        try:
            if result.returns_rows:
                batch = result.fetchmany(fetch)
                columns = _column_names(list(result.keys()))
                truncated = len(batch) > plan.cap
                rows = json_rows(columns, batch[: plan.cap])
                if truncated and discard_unread and plan.read and i == last:
                    conn.invalidate()  # the server aborts the query when its writes fail
                    continue
            if not plan.read and (not reads or not result.returns_rows):
                count = result.rowcount
                if count is not None and count >= 0:
                    affected = (affected or 0) + count
        finally:
            if not conn.invalidated:
                result.close()
    return SqlResult(
        rows=rows,
        count=len(rows),
        truncated=truncated,
        rows_affected=None if plan.read else affected,
        columns=columns,
    )


# --- PostgreSQL reads: asyncpg directly, fewer round trips ------------------------------


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


async def _pg_read(con: Any, handle: EngineHandle, plan: _Plan) -> SqlResult:
    """A read on PostgreSQL (a connection of ``EngineHandle.run_read``'s read pool).

    ``BEGIN READ ONLY`` (with ``SET LOCAL statement_timeout`` in the same round trip
    when the call's timeout differs from the pool's), then each statement in one round
    trip of at most cap + 1 rows. The transaction is left open: ``run_read`` rolls it
    back together with the session reset before the connection is used again (see the
    module docstring). The statement text and its typed binds are SQLAlchemy's own
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


async def _pg_read_statements(con: Any, handle: EngineHandle, plan: _Plan, begin: str) -> SqlResult:
    await con.execute(begin)
    rows: list[Any] = []
    columns: list[str] = []
    truncated = False
    for stmt in plan.statements:
        sql, args = _pg_compiled(handle, stmt)
        batch, names = await _pg_fetch(con, sql, args, plan.cap + 1)
        if names is None:
            continue  # no result set (a statement that returns nothing)
        columns = _column_names(names)
        truncated = len(batch) > plan.cap
        rows = batch[: plan.cap] if truncated else batch
    return SqlResult(
        rows=json_rows(columns, rows),
        count=len(rows),
        truncated=truncated,
        rows_affected=None,
        columns=columns,
    )


def _check_statements(engine: str, keywords: Sequence[str], *, read: bool) -> None:
    """Refuse statements by their leading keyword before anything runs.

    Reads may not control transactions or session modes (all engines), nor, on SQL
    Server, which has no read-only transaction, start with a data-changing keyword.
    SQLite may not ATTACH/DETACH/VACUUM (files outside the allowed folders). A T-SQL
    batch is only checked at its ``;`` boundaries: keep SQL Server credentials to the
    privileges the integration needs.
    """
    if engine == "sqlite":
        bad = [k for k in keywords if k in _SQLITE_FORBIDDEN]
        if bad:
            raise SqlError(
                "sql_error", f"{bad[0]} is not allowed: a sqlite integration uses its own database file only"
            )
    if not read:
        return
    forbidden = _READ_FORBIDDEN | (_MSSQL_WRITE_KEYWORDS if engine == "mssql" else set())
    bad = [k for k in keywords if k in forbidden]
    if bad and bad[0] == "/*!":
        raise SqlError(
            "read_only", "a read operation cannot start a statement with an executable comment (/*! … */)"
        )
    if bad:
        raise SqlError("read_only", f"a read operation cannot run {bad[0]} statements")


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
) -> SqlResult:
    """Run one SQL operation and return its capped, JSON-friendly result.

    ``operation_type``: ``"read"`` or ``"write"``. ``schema``: the operation's
    parameters JSON Schema (types the binds). ``params``: validated caller values
    (omitted ones bind as typed NULLs). ``security``: ``{maxResultRows (rows, default
    1000), queryTimeoutMs (ms, default 30000)}``; ``max_rows_ceiling`` (rows) is the
    operator's ceiling on maxResultRows. ``read_only_connection``: the manifest's
    ``sqlConnectionConfig.readOnly``.

    Raises SqlError with code ``read_only``, ``timeout``, ``sql_error``,
    ``connection_failed``, ``invalid_params`` or ``config_error``; messages are the
    database's own, without the password or connection URL (DESIGN §5, §8).
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
    timeout_ms = _limit(sec.get("queryTimeoutMs"), DEFAULT_QUERY_TIMEOUT_MS, "queryTimeoutMs")

    engine = engine_handle.engine
    compiled = _compile(query, engine, schema)
    batch = engine == "mssql"
    statements = compiled.bind(params, split=not batch)
    keywords = (
        (compiled.statement_keywords[-1] if compiled.statement_keywords else "",)
        if batch
        else compiled.statement_keywords
    )
    if not statements or not compiled.statement_keywords:
        raise SqlError("config_error", "the query has no SQL statement")
    _check_statements(engine, compiled.statement_keywords, read=read)
    plan = _Plan(statements, keywords, read, cap, timeout_ms)
    if read and engine == "postgres":
        return await _run_with_deadline(
            engine_handle,
            functools.partial(_pg_read, handle=engine_handle, plan=plan),
            timeout_ms=timeout_ms,
            deadline_ms=client_deadline_ms(timeout_ms),
            pg_read=True,
        )
    return await _run_with_deadline(
        engine_handle,
        functools.partial(_execute, handle=engine_handle, plan=plan),
        timeout_ms=timeout_ms,
        deadline_ms=client_deadline_ms(timeout_ms),
    )


async def _run_with_deadline(
    handle: EngineHandle, fn: Any, *, timeout_ms: int, deadline_ms: int, pg_read: bool = False
) -> Any:
    """``handle.run(fn)`` (or ``run_read``, PostgreSQL's read pool, when ``pg_read``)
    under a client-side deadline (ms); errors become SqlError."""
    try:
        async with asyncio.timeout(deadline_ms / 1000):
            if pg_read:
                return await handle.run_read(fn)
            return await handle.run(fn)
    except SqlError:
        raise
    except TimeoutError:
        raise SqlError(
            "timeout", f"the query did not finish within {timeout_ms} ms and was cancelled"
        ) from None
    except Exception as exc:
        err = to_sql_error(exc, handle.secrets)
        if err.code == "timeout":
            err = SqlError(
                "timeout",
                f"the query did not finish within {timeout_ms} ms and was cancelled ({err.message})",
            )
        raise err from None


async def test_sql_connection(
    engine_handle: EngineHandle, *, timeout_ms: int = 10_000
) -> list[dict[str, Any]]:
    """Connect and run ``SELECT 1`` within ``timeout_ms`` (ms).

    Returns the steps tried, in order: ``[{"name": "connect" | "query", "ok": bool,
    "durationMs": int, "message": str}]``; a failed connect ends the list. Never raises
    for connection problems; messages carry no password.
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
    return steps


# Not a pytest test, despite the name (the API's Test-connection feature).
test_sql_connection.__test__ = False  # type: ignore[attr-defined]
