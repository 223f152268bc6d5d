"""Turning driver exceptions into ``SqlError``s with clean, secret-free messages.

DESIGN §5 and §8: the caller sees the database's own message and one of the codes
``sql_error``, ``timeout``, ``read_only``, ``connection_failed``; never the password
or the connection URL (DESIGN §7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import exc as sa_exc

from bollard.platform.errors import SqlError

from .types import SqlErrorCode

# SQLSTATE / error numbers that mean "a write in a read-only transaction".
_PG_READ_ONLY = "25006"
_MYSQL_READ_ONLY = {1792, 1290}  # in READ ONLY transaction; --read-only server
# ... and "the server cancelled the statement for its time limit".
_PG_CANCELED = "57014"
_MYSQL_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time; MySQL max_execution_time
_MSSQL_TIMEOUT = {20003}  # pymssql/FreeTDS: query timeout
# SQLSTATE classes / error numbers that mean the connection itself failed.
_PG_CONNECTION_CLASSES = ("08", "28", "3D", "53", "57P")
_MYSQL_CONNECTION = {1044, 1045, 1049, 1129, 1130, 1203, 2002, 2003, 2005, 2006, 2013, 2026}

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
MIN_SECRET_LENGTH = 3


def redact(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every secret value and any ``scheme://…`` URL replaced."""
    for s in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        message = message.replace(s, "[REDACTED]")
    return _URL.sub("[URL]", message)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, the driver error it wraps, and their causes (outermost first)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 6:
        seen.append(cur)
        if isinstance(cur, sa_exc.DBAPIError) and cur.orig is not None:
            cur = cur.orig
        else:
            cur = cur.__cause__ or cur.__context__
    return seen


def _sqlstate(errors: list[BaseException]) -> str | None:
    for e in errors:
        for attr in ("sqlstate", "pgcode"):
            v = getattr(e, attr, None)
            if isinstance(v, str) and len(v) == 5:
                return v
    return None


def _args(e: BaseException) -> tuple[Any, ...]:
    """Exception args; pymssql nests ``(number, b"message")`` as its only arg."""
    args: tuple[Any, ...] = tuple(getattr(e, "args", ()))
    if len(args) == 1 and isinstance(args[0], tuple) and len(args[0]) >= 2:
        return tuple(args[0])
    return args


def _clean(message: str) -> str:
    """One line: FreeTDS's "DB-Lib error message N, severity S:" headers and repeated
    lines dropped."""
    lines: list[str] = []
    for line in message.splitlines():
        line = " ".join(line.split())
        if not line or line.startswith("DB-Lib error message") or line in lines:
            continue
        if line.startswith("General SQL Server error: Check messages"):
            continue
        lines.append(line)
    return "; ".join(lines)


def _errno(errors: list[BaseException]) -> int | None:
    for e in errors:
        args = _args(e)
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            return args[0]
        number = getattr(e, "number", None)  # pymssql
        if isinstance(number, int):
            return number
    return None


def driver_message(exc: BaseException) -> str:
    """The innermost driver's own message, without SQLAlchemy's statement echo."""
    errors = _chain(exc)
    for e in reversed(errors):
        if isinstance(e, sa_exc.SQLAlchemyError):
            continue
        args = _args(e)
        if len(args) >= 2 and isinstance(args[0], int):
            msg = args[1]
            if isinstance(msg, bytes):
                msg = msg.decode("utf-8", "replace")
            return _clean(str(msg)) or type(e).__name__
        text = str(e).strip()
        if text:
            # asyncpg errors adapted by SQLAlchemy read "<class '…'>: message"
            text = re.sub(r"^<class '[^']+'>:\s*", "", text)
            return " ".join(text.split())
        return type(e).__name__
    return " ".join(str(exc).split()) or type(exc).__name__


def classify(exc: BaseException) -> SqlErrorCode:
    """The envelope code for a failure raised while running a statement."""
    errors = _chain(exc)
    state = _sqlstate(errors)
    errno = _errno(errors)
    if state == _PG_READ_ONLY or errno in _MYSQL_READ_ONLY:
        return "read_only"
    if state == _PG_CANCELED or errno in _MYSQL_TIMEOUT or errno in _MSSQL_TIMEOUT:
        return "timeout"
    for e in errors:
        name = getattr(e, "sqlite_errorname", None)
        if name == "SQLITE_READONLY":
            return "read_only"
        if name == "SQLITE_INTERRUPT":
            return "timeout"
    if state and state.startswith(_PG_CONNECTION_CLASSES) or errno in _MYSQL_CONNECTION:
        return "connection_failed"
    for e in errors:
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return "connection_failed"
        if isinstance(e, OSError | ConnectionError):
            return "connection_failed"
    return "sql_error"


def to_sql_error(exc: BaseException, secrets: Iterable[str], *, prefix: str = "") -> SqlError:
    """A ``SqlError`` for ``exc`` with a redacted message (``prefix`` is prepended)."""
    if isinstance(exc, SqlError):
        return exc
    code = classify(exc)
    return SqlError(code, redact(prefix + driver_message(exc), secrets))
