"""Rate limits (token buckets) and concurrency caps per integration and operation.

DESIGN §2 extensions: ``connectionConfig.rateLimit`` (the whole integration) and an
operation's ``rateLimit`` and ``maxConcurrency``. A call over a limit is answered at
once with ``429`` and ``Retry-After`` rather than queued without bound. State is per
process: with several replicas each applies the limits to the calls it serves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from bollard.platform.manifest import RateLimit


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` tokens per second."""

    capacity: float
    rate: float
    tokens: float = field(default=-1.0)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float | None = None) -> float:
        """Take one token; return 0 on success, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def bucket_for(limit: RateLimit) -> TokenBucket:
    return TokenBucket(capacity=float(limit.burst or limit.requests), rate=limit.requests / limit.per_seconds)


class Limiter:
    """Buckets and in-flight counters keyed by strings such as ``slug`` or ``slug/op``."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, RateLimit], TokenBucket] = {}
        self._in_flight: dict[str, int] = {}

    def check_rate(self, key: str, limit: RateLimit | None) -> int:
        """0 when the call may go, else ``Retry-After`` seconds (≥1, rounded up)."""
        if limit is None:
            return 0
        bucket = self._buckets.get((key, limit))
        if bucket is None:
            bucket = self._buckets[(key, limit)] = bucket_for(limit)
        wait = bucket.take()
        return 0 if wait == 0 else max(1, math.ceil(wait))

    def acquire(self, key: str, cap: int | None) -> bool:
        """Count one call in flight under ``key``; ``False`` (nothing counted) when at ``cap``."""
        if cap is None:
            return True
        current = self._in_flight.get(key, 0)
        if current >= cap:
            return False
        self._in_flight[key] = current + 1
        return True

    def release(self, key: str, cap: int | None) -> None:
        if cap is None:
            return
        left = self._in_flight.get(key, 1) - 1
        if left <= 0:
            self._in_flight.pop(key, None)
        else:
            self._in_flight[key] = left
