"""Rate limits and concurrency caps shared by every replica on one PostgreSQL (DESIGN §12).

The same rule as :class:`~bollard.platform.ratelimit.LocalLimiter`, kept in two
``UNLOGGED`` tables (migration ``0006_replicas``; losing them in a database crash only
resets the limits):

- ``bollard_rate_limits``: one row per key holding GCRA's theoretical arrival time
  (``tat``, seconds since the epoch on the database's clock, so replicas' clocks do not
  matter). A check is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` in autocommit:
  the row lock serialises concurrent checks, so ``N`` per minute admits ``N`` in all.
- ``bollard_slots``: ``maxConcurrency`` rows per key. Acquiring is one ``UPDATE`` of a
  free slot picked with ``FOR UPDATE SKIP LOCKED``; a slot is a lease that expires after
  :data:`LEASE_TTL_S` unless renewed, so the slots of a replica that died come back by
  themselves. This process renews the leases it holds every ``LEASE_TTL_S / 3``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.manifest import RateLimit
from bollard.platform.ratelimit import Lease, Limiter, LocalLimiter, emission_interval, retry_after

log = logging.getLogger("bollard.ratelimit")

LEASE_TTL_S = 30.0  # a dead replica's concurrency slots are free again after this long
_NOW = "extract(epoch FROM clock_timestamp())::float8"

_CHECK = text(
    f"""
INSERT INTO bollard_rate_limits AS r (key, tat, seen, admitted)
SELECT :key, n.now + :t, n.now, true FROM (SELECT {_NOW} AS now) AS n
ON CONFLICT (key) DO UPDATE SET
  admitted = greatest(r.tat, EXCLUDED.seen) + :t - EXCLUDED.seen <= :tau,
  tat = CASE WHEN greatest(r.tat, EXCLUDED.seen) + :t - EXCLUDED.seen <= :tau
             THEN greatest(r.tat, EXCLUDED.seen) + :t ELSE r.tat END,
  seen = EXCLUDED.seen
RETURNING admitted, tat, seen
"""
)
_SLOTS = text(
    "INSERT INTO bollard_slots (key, slot, holder, expires) "
    "SELECT :key, s, NULL, 0 FROM generate_series(0, CAST(:cap AS integer) - 1) AS s "
    "ON CONFLICT DO NOTHING"
)
_ACQUIRE = text(
    f"""
UPDATE bollard_slots AS s SET holder = :holder, expires = {_NOW} + :ttl
FROM (SELECT slot FROM bollard_slots
      WHERE key = :key AND slot < :cap AND expires <= {_NOW}
      ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) AS f
WHERE s.key = :key AND s.slot = f.slot
RETURNING s.slot
"""
)
_RELEASE = text(
    "UPDATE bollard_slots SET holder = NULL, expires = 0 "
    "WHERE key = :key AND slot = :slot AND holder = :holder"
)
_RENEW = text(f"UPDATE bollard_slots SET expires = {_NOW} + :ttl WHERE holder = ANY(:holders)")


class PgLimiter:
    """:class:`~bollard.platform.ratelimit.Limiter` on the shared PostgreSQL state database.

    A database error refuses nothing: the call goes on and the error is logged (a limit
    must not turn a database hiccup into an outage), so limits are best effort while the
    database is unreachable — as is everything else then.
    """

    def __init__(self, engine: AsyncEngine, *, lease_ttl_s: float = LEASE_TTL_S) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.lease_ttl_s = lease_ttl_s
        self._slots_made: set[tuple[str, int]] = set()
        self._held: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def _one(self, statement: Any, **params: Any) -> Any:
        async with self._engine.connect() as conn:
            return (await conn.execute(statement, params)).first()

    async def check_rate(self, key: str, limit: RateLimit) -> int:
        t, tau = emission_interval(limit)
        try:
            row = await self._one(_CHECK, key=key, t=t, tau=tau + 1e-9)
        except Exception as e:
            log.warning("rate limit check for %s failed, letting the call go: %s", key, type(e).__name__)
            return 0
        admitted, tat, seen = row
        if admitted:
            return 0
        return retry_after(max(tat, seen) + t - seen - tau)

    async def acquire(self, key: str, cap: int) -> Lease | None:
        lease = Lease(key, -1)
        try:
            if (key, cap) not in self._slots_made:
                async with self._engine.connect() as conn:
                    await conn.execute(_SLOTS, {"key": key, "cap": cap})
                if len(self._slots_made) > 10_000:
                    self._slots_made.clear()
                self._slots_made.add((key, cap))
            row = await self._one(_ACQUIRE, key=key, cap=cap, holder=lease.holder, ttl=self.lease_ttl_s)
        except Exception as e:
            log.warning("concurrency slot for %s failed, letting the call go: %s", key, type(e).__name__)
            return lease  # slot -1: nothing to give back
        if row is None:
            return None
        self._held.add(lease.holder)
        self._start_renewer()
        return Lease(key, int(row[0]), lease.holder)

    async def release(self, lease: Lease) -> None:
        self._held.discard(lease.holder)
        if lease.slot < 0:
            return
        try:
            async with self._engine.connect() as conn:
                await conn.execute(_RELEASE, {"key": lease.key, "slot": lease.slot, "holder": lease.holder})
        except Exception as e:  # the lease expires by itself
            log.warning("releasing a slot of %s failed: %s", lease.key, type(e).__name__)

    def _start_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_ttl_s / 3)
            held = list(self._held)
            if not held:
                return
            try:
                async with self._engine.connect() as conn:
                    await conn.execute(_RENEW, {"holders": held, "ttl": self.lease_ttl_s})
            except Exception as e:
                log.warning("renewing concurrency leases failed: %s", type(e).__name__)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer


def make_limiter(engine: AsyncEngine) -> Limiter:
    """:class:`PgLimiter` when the state database is PostgreSQL, else a
    :class:`~bollard.platform.ratelimit.LocalLimiter`."""
    if engine.dialect.name == "postgresql":
        return PgLimiter(engine)
    return LocalLimiter()
