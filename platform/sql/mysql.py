"""MariaDB/MySQL specifics of the SQL runner (DESIGN §5; docs/sql-runner.md).

Reads run in a read-only *session* (DDL would commit a transaction-level READ ONLY
away), set again before each statement; the statement time limit is MariaDB's
``max_statement_time`` or MySQL's ``max_execution_time``. A credential that asks for TLS
gets a connection that is refused when the server did not encrypt it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from bollard.platform.errors import SqlError

__all__ = ["require_mysql_tls", "set_mysql_session"]

_INFO_SESSION = "bollard_session"  # Connection.info key: (access mode, timeout ms) last set


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
