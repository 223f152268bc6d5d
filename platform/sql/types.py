"""Shared value types of the SQL runner: the result and the error (DESIGN §5, §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Why a result stopped early: the row cap or the byte budget (DESIGN §5).
TruncatedReason = Literal["rows", "bytes"]

SqlErrorCode = Literal[
    "sql_error", "timeout", "read_only", "connection_failed", "invalid_params", "config_error"
]


@dataclass
class SqlResult:
    """What one SQL operation returned, already JSON-friendly.

    ``rows``: at most the row cap, each a dict keyed by column name (in ``columns``
    order). ``count``: ``len(rows)``. ``truncated``: the statement had more rows than the
    cap (``truncated_reason`` ``"rows"``) or than the byte budget (``"bytes"``); the rest
    were never fetched or converted. ``rows_affected``: for write operations, the rows the
    data-changing statements touched (None for reads, or when the driver cannot tell).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    truncated: bool = False
    rows_affected: int | None = None
    columns: list[str] = field(default_factory=list)
    truncated_reason: TruncatedReason | None = None

    @classmethod
    def of(
        cls,
        rows: list[dict[str, Any]],
        columns: list[str],
        reason: TruncatedReason | None,
        rows_affected: int | None = None,
    ) -> SqlResult:
        """The result of ``rows`` (``count`` and ``truncated`` follow from them and ``reason``)."""
        return cls(
            rows=rows,
            count=len(rows),
            truncated=reason is not None,
            rows_affected=rows_affected,
            columns=columns,
            truncated_reason=reason,
        )
