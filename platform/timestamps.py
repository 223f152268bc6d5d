"""Timestamps in responses: ISO 8601 in UTC with an offset, always (DESIGN §8)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 UTC with ``+00:00`` (``None`` stays ``None``).

    SQLite hands back naive datetimes; every datetime the host stores is UTC, so a naive
    one is read as UTC rather than as local time.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()
