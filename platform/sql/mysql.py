"""MariaDB/MySQL specifics of the SQL runner (DESIGN §5; docs/sql-runner.md).

Connections never run more than one statement per call: they are opened without
``CLIENT.MULTI_STATEMENTS`` (``connect_single_statement``), so the server refuses a
second statement in one call whatever Bollard's lexer thought of the text. Every
connection returned to the pool is reset (``reset_mysql_session``: locks, user
variables, temporary tables, prepared statements, session variables), so no session
state outlives a call.

Reads run in a read-only *session* (DDL would commit a transaction-level READ ONLY
away), set again before each statement; the statement time limit is MariaDB's
``max_statement_time`` or MySQL's ``max_execution_time``. A credential that asks for TLS
gets a connection that is refused when the server did not encrypt it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import aiomysql
from pymysql.constants import CLIENT
from sqlalchemy import Connection
from sqlalchemy.util import await_only

from bollard.platform.errors import SqlError

__all__ = [
    "connect_single_statement",
    "mysql_session_resetter",
    "require_mysql_tls",
    "reset_mysql_session",
    "set_mysql_session",
]

# COM_RESET_CONNECTION (MySQL 5.7.3+, MariaDB 10.2.4+), which aiomysql has no method for.
_COM_RESET_CONNECTION = 0x1F

_INFO_SESSION = "bollard_session"  # Connection.info key: (access mode, timeout ms) last set
# Connection.info key: ("read only", timeout ms) the check-in's reset left the session in;
# dropped by the next use and by every check-in (info itself is cleared on invalidation)
_INFO_FRESH = "bollard_session_fresh"


def _session_assignments(mariadb: bool, version: tuple[int, ...], *, read: bool, timeout_ms: int) -> str:
    """``SESSION <access mode> = 0|1, SESSION <statement time limit> = …`` for the server
    (MariaDB before 11.1 names the access mode ``tx_read_only``)."""
    if mariadb:
        access = "tx_read_only" if version < (11, 1) else "transaction_read_only"
        return f"SESSION {access} = {int(read)}, SESSION max_statement_time = {int(timeout_ms) / 1000:.3f}"
    return f"SESSION transaction_read_only = {int(read)}, SESSION max_execution_time = {int(timeout_ms)}"


def _server_kind(server_info: str) -> tuple[bool, tuple[int, ...]]:
    """(MariaDB?, version) from the handshake's version string: ``10.11.6-MariaDB…``,
    ``5.5.5-10.11.6-MariaDB…`` (the prefix older MariaDB sends), ``8.0.36``."""
    mariadb = "mariadb" in server_info.lower()
    text = server_info[6:] if mariadb and server_info.startswith("5.5.5-") else server_info
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    version = tuple(int(g) for g in found.groups() if g is not None) if found else ()
    return mariadb, version


def set_mysql_session(conn: Connection, *, read: bool, timeout_ms: int) -> None:
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
    # A read's first statement on a session the check-in left read-only with this very
    # limit (reset_mysql_session, nothing ran since) needs no SET: one round trip less.
    # Any use consumes that mark, so every later statement sets both again.
    if conn.info.pop(_INFO_FRESH, None) == state and read:
        conn.info.pop(_INFO_SESSION, None)
        return
    if not read and conn.info.get(_INFO_SESSION) == state:
        return
    dialect: Any = conn.dialect
    version = tuple(v for v in dialect.server_version_info or () if isinstance(v, int))
    sql = "SET " + _session_assignments(dialect.is_mariadb, version, read=read, timeout_ms=timeout_ms)
    conn.exec_driver_sql(sql)  # numbers only: nothing from the caller
    if read:
        conn.info.pop(_INFO_SESSION, None)
    else:
        conn.info[_INFO_SESSION] = state


async def connect_single_statement(**kw: Any) -> aiomysql.Connection:
    """``aiomysql.connect`` without ``CLIENT.MULTI_STATEMENTS`` (SQLAlchemy's
    ``async_creator_fn``; the keyword arguments are ``aiomysql.connect``'s).

    aiomysql always adds that flag to the handshake and has no option to leave it out,
    so the connection is built, the flag cleared, then connected. Without it the server
    answers a second statement in one COM_QUERY with a syntax error (1064) instead of
    running it (DESIGN §5; hardening issue item 12).
    """
    conn = aiomysql.Connection(**kw)
    conn.client_flag &= ~CLIENT.MULTI_STATEMENTS
    try:
        await conn._connect()
    except BaseException:
        conn.close()
        raise
    return conn


async def _reset(raw: aiomysql.Connection, timeout_ms: int) -> None:
    await raw._execute_command(_COM_RESET_CONNECTION, b"")
    await raw._read_ok_packet()
    # The reset brings back the server's defaults, autocommit on among them; SQLAlchemy
    # runs transactions with autocommit off. The same round trip makes the session
    # read-only with the engine's statement time limit, which a read then need not set.
    mariadb, version = _server_kind(raw.get_server_info() or "")
    read_only = _session_assignments(mariadb, version, read=True, timeout_ms=timeout_ms)
    await raw.query(f"SET autocommit = {int(bool(raw.autocommit_mode))}, {read_only}")


def mysql_session_resetter(timeout_ms: int) -> Callable[[Any, Any, Any], None]:
    """The pool ``reset`` event of an engine whose default statement limit is
    ``timeout_ms`` (ms): :func:`reset_mysql_session` with it."""
    return functools.partial(reset_mysql_session, timeout_ms=timeout_ms)


def reset_mysql_session(
    dbapi_connection: Any, connection_record: Any, reset_state: Any, *, timeout_ms: int = 30_000
) -> None:
    """Pool ``reset`` event: give the session back as a new one (COM_RESET_CONNECTION:
    rolls back, releases ``GET_LOCK`` locks and table locks, clears user variables,
    drops temporary tables and prepared statements, resets session variables), then
    turn autocommit off again and make the session read-only with a statement limit of
    ``timeout_ms`` (ms), in one statement. Runs whenever a connection goes back to the
    pool, so nothing one call leaves in the session reaches the next (DESIGN §5;
    hardening issue item 16). Forgets the session state ``set_mysql_session`` cached and
    marks the session as that fresh read-only one (the next read's first statement
    skips its SET).

    When the reset fails, SQLAlchemy discards the connection instead of pooling it.
    """
    connection_record.info.pop(_INFO_SESSION, None)
    connection_record.info.pop(_INFO_FRESH, None)
    if getattr(reset_state, "terminate_only", False) or not getattr(reset_state, "asyncio_safe", True):
        return  # the connection is being closed, not pooled
    await_only(_reset(connection_record.driver_connection, timeout_ms))
    connection_record.info[_INFO_FRESH] = ("read only", timeout_ms)


def require_mysql_tls(dbapi_connection: Any, _record: Any) -> None:
    """Refuse a MariaDB/MySQL connection that came up without TLS although the
    credential asks for it (aiomysql silently continues in clear text when the server
    offers no TLS)."""
    cur = dbapi_connection.cursor()
    try:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    finally:
        cur.close()
    if not row or not row[1]:
        raise SqlError(
            "connection_failed",
            "the server did not encrypt the connection (no TLS), which the credential requires (ssl/encrypt)",
        )
