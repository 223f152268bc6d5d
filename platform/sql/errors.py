"""Turning driver exceptions into ``SqlError``s with clean, secret-free messages.

DESIGN §5 and §8: a failed statement answers one of the codes ``sql_error``,
``timeout``, ``read_only``, ``connection_failed`` with Bollard's own message, the error
class and the SQLSTATE / driver error number (``details``: ``{"sqlstate"?, "errorClass",
"driverCode"?}``), never the driver's text: that can echo caller input (``invalid input
syntax for type integer: "<the parameter>"``), and redacting a secret out of it marks
which part of the input was the secret (hardening issue item 21). The driver's text goes
to the server log, redacted (logger ``bollard.sql``). A failure to *connect* keeps the
driver's text (``connect_error``): no caller input has been sent then. Never the
password or the connection URL (DESIGN §7).
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger("bollard.sql")
_LOGGED_CHARS = 2000  # driver text kept in one log line

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


def _error_class(errors: list[BaseException]) -> str:
    """A name for the failure: PostgreSQL's condition name (``undefined_table``), the
    MySQL/MariaDB ``ER_…`` name, SQLite's ``SQLITE_…`` name, else the driver's class."""
    for e in errors:
        name = getattr(e, "sqlite_errorname", None)
        if isinstance(name, str):
            return name
    for e in reversed(errors):
        if type(e).__module__.startswith("asyncpg"):
            base = type(e).__name__.removesuffix("Error")
            return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower() or "postgres_error"
    errno = _errno(errors)
    if errno is not None:
        name = _mysql_names().get(errno)
        if name:
            return f"ER_{name}"
    inner = [e for e in errors if not isinstance(e, sa_exc.SQLAlchemyError)]
    return type(inner[-1] if inner else errors[-1]).__name__


def _mysql_names() -> dict[int, str]:
    global _MYSQL_NAMES
    if _MYSQL_NAMES is None:
        try:
            from pymysql.constants import ER
        except ImportError:  # pragma: no cover - pymysql comes with aiomysql
            _MYSQL_NAMES = {}
        else:
            _MYSQL_NAMES = {v: k for k, v in vars(ER).items() if k.isupper() and isinstance(v, int)}
    return _MYSQL_NAMES


_MYSQL_NAMES: dict[int, str] | None = None

_WHAT: dict[str, str] = {
    "sql_error": "the database refused the statement",
    "read_only": "the database refused a write in a read-only transaction",
    "timeout": "the server cancelled the statement for its time limit",
    "connection_failed": "the connection to the database failed while the statement ran",
}


def _safe_line(text: str) -> str:
    """``text`` on one log line: control characters escaped, at most _LOGGED_CHARS."""
    text = text[:_LOGGED_CHARS]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def to_sql_error(exc: BaseException, secrets: Iterable[str], *, target: str = "") -> SqlError:
    """A ``SqlError`` for a statement that failed with ``exc``: Bollard's message with
    the error class and SQLSTATE / driver code (also in ``details``), no driver text.
    The driver's text is logged (``bollard.sql``, WARNING), redacted and on one line;
    ``target`` names the server in that line."""
    if isinstance(exc, SqlError):
        return exc
    errors = _chain(exc)
    code = classify(exc)
    state = _sqlstate(errors)
    errno = _errno(errors)
    details: dict[str, Any] = {"errorClass": _error_class(errors)}
    ident = details["errorClass"]
    if state is not None:
        details["sqlstate"] = state
        ident += f", SQLSTATE {state}"
    if errno is not None:
        details["driverCode"] = errno
        ident += f", error {errno}"
    logger.warning(
        "SQL statement failed%s: %s (%s): %s",
        f" on {target}" if target else "",
        code,
        ident,
        _safe_line(redact(driver_message(exc), secrets)),
    )
    message = f"{_WHAT[code]} ({ident}); the database's own message is in the server log"
    return SqlError(code, message, details=details)


def connect_error(exc: BaseException, secrets: Iterable[str], target: str) -> SqlError:
    """A ``SqlError`` for a failure to connect to ``target``: code ``connection_failed``
    (``timeout``, ``config_error`` when the failure says so), the driver's own text
    redacted (connecting sends no caller input)."""
    if isinstance(exc, SqlError):
        return exc
    code = classify(exc)
    message = redact(f"could not connect to {target}: " + driver_message(exc), secrets)
    return SqlError(code if code == "timeout" else "connection_failed", message)
