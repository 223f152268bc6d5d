"""Rate limits and concurrency caps per integration and operation, behind one interface.

DESIGN §2 extensions: ``connectionConfig.rateLimit`` (the whole integration) and an
operation's ``rateLimit`` and ``maxConcurrency``. A call over a limit is answered at
once with ``429`` and ``Retry-After`` rather than queued without bound.

DESIGN §12: with several replicas on one PostgreSQL the limits hold across all of them
(:class:`~bollard.platform.pg_ratelimit.PgLimiter`: one atomic statement per check);
with the SQLite default :class:`LocalLimiter` keeps them in this process. Both follow
the same rule, GCRA (the generic cell rate algorithm, the token bucket written as one
"theoretical arrival time" per key): ``requests`` per ``perSeconds``, at most ``burst``
(default ``requests``) at once.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from bollard.platform.manifest import RateLimit


@dataclass(frozen=True)
class Lease:
    """One concurrency slot held by one call: ``key`` (``slug/op``), the slot number and
    a holder id unique to the call; give it back with :meth:`Limiter.release`."""

    key: str
    slot: int
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)


class Limiter(Protocol):
    """What the execution service needs from a limiter (in process or shared)."""

    async def check_rate(self, key: str, limit: RateLimit) -> int:
        """Count one call under ``key``; 0 when it may go, else ``Retry-After`` seconds
        (≥1, rounded up), and then nothing is counted."""
        ...

    async def acquire(self, key: str, cap: int) -> Lease | None:
        """Take one of ``cap`` slots of ``key``; ``None`` (nothing taken) when all are busy."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give a slot back (never raises)."""
        ...

    async def close(self) -> None:
        """Stop background work (lease renewal)."""
        ...


def emission_interval(limit: RateLimit) -> tuple[float, float]:
    """GCRA's ``(T, tau)`` in seconds: one call per ``T``, at most ``burst`` at once
    (``tau = burst × T``: a call is admitted while the theoretical arrival time after it
    is at most ``tau`` ahead of now)."""
    t = limit.per_seconds / limit.requests
    return t, t * float(limit.burst or limit.requests)


def gcra(tat: float | None, now: float, limit: RateLimit) -> tuple[float | None, float]:
    """One GCRA step: ``(new_tat, 0)`` when admitted, ``(None, wait_s)`` when not.

    ``tat``: the key's theoretical arrival time (``None``: never seen); seconds on any
    clock ``now`` is on. The SQL of :mod:`~bollard.platform.pg_ratelimit` is this rule.
    """
    t, tau = emission_interval(limit)
    new_tat = max(tat if tat is not None else now, now) + t
    if new_tat - now <= tau + 1e-9:
        return new_tat, 0.0
    return None, new_tat - now - tau


def retry_after(wait_s: float) -> int:
    """``Retry-After`` seconds for a wait: at least 1, rounded up."""
    return max(1, math.ceil(wait_s - 1e-9))


class LocalLimiter:
    """In-process GCRA state and slot counters (one replica, or the SQLite default)."""

    def __init__(self) -> None:
        self._tat: dict[tuple[str, RateLimit], float] = {}
        self._in_flight: dict[str, int] = {}

    async def check_rate(self, key: str, limit: RateLimit) -> int:
        now = time.monotonic()
        new_tat, wait = gcra(self._tat.get((key, limit)), now, limit)
        if new_tat is None:
            return retry_after(wait)
        if len(self._tat) > 100_000:  # keys of versions long gone
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._tat[(key, limit)] = new_tat
        return 0

    async def acquire(self, key: str, cap: int) -> Lease | None:
        current = self._in_flight.get(key, 0)
        if current >= cap:
            return None
        self._in_flight[key] = current + 1
        return Lease(key, current)

    async def release(self, lease: Lease) -> None:
        left = self._in_flight.get(lease.key, 1) - 1
        if left <= 0:
            self._in_flight.pop(lease.key, None)
        else:
            self._in_flight[lease.key] = left

    async def close(self) -> None:
        return None
