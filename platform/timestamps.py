"""Timestamps in responses: ISO 8601 in UTC with an explicit offset (DESIGN §8).

SQLite hands back naive datetimes for ``DateTime(timezone=True)`` columns; every value
stored by Bollard is UTC, so a naive value is read as UTC. PostgreSQL hands back aware
values in the session's zone; they are converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(value: datetime | float | None) -> str | None:
    """``value`` as ``2026-01-02T03:04:05.123456+00:00``; ``None`` stays ``None``.

    ``value`` is a datetime (naive means UTC, see the module docstring) or epoch
    seconds (``int``/``float``, as OAuth2 expiries are kept).
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()
