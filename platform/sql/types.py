"""Shared value types of the SQL runner: the result and the error (DESIGN §5, §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SqlErrorCode = Literal[
    "sql_error", "timeout", "read_only", "connection_failed", "invalid_params", "config_error"
]


class SqlError(Exception):
    """A failed SQL call, carrying an envelope error code (DESIGN §8).

    Codes: ``sql_error`` (the database refused the statement), ``timeout`` (server or
    client deadline), ``read_only`` (a write where only reads are allowed),
    ``connection_failed`` (could not connect or log in), ``invalid_params`` (a value
    could not be converted to its declared type), ``config_error`` (the connection
    settings themselves are unusable, e.g. a sqlite path outside the allowed folders).
    The message never contains the password or the connection URL.
    """

    def __init__(self, code: SqlErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: SqlErrorCode = code
        self.message = message

    def __repr__(self) -> str:
        return f"SqlError({self.code!r}, {self.message!r})"


@dataclass
class SqlResult:
    """What one SQL operation returned, already JSON-friendly.

    ``rows``: at most the row cap, each a dict keyed by column name (in ``columns``
    order). ``count``: ``len(rows)``. ``truncated``: the statement had more rows than the
    cap (they were never fetched). ``rows_affected``: for write operations, the rows the
    data-changing statements touched (None for reads, or when the driver cannot tell).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    truncated: bool = False
    rows_affected: int | None = None
    columns: list[str] = field(default_factory=list)
