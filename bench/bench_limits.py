"""Benchmark: what a shared rate limit and concurrency cap cost per call (DESIGN §12).

Run with ``make bench`` (or ``.venv/bin/python bench/bench_limits.py``). On a fresh
PostgreSQL database at ``BOLLARD_TEST_PG_URL`` (skipped without it): the GCRA check
(``PgLimiter.check_rate``, one ``INSERT … ON CONFLICT … RETURNING``), a concurrency slot
(``acquire`` + ``release``, two ``UPDATE``\\ s), and, measured in the same run, the direct
path they are compared with: a ``SELECT 1`` through the same engine and pool, and the
in-process :class:`LocalLimiter` (the SQLite default). One caller in a row, then 64 at once
(the load bench's concurrency) on one key (the worst case: one row, one lock) and on 64
keys. Medians of ``BENCH_ROUNDS`` rounds (default 3) of ``BENCH_CALLS`` calls (default 256).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy import text  # noqa: E402

from bollard.platform.manifest import RateLimit  # noqa: E402
from bollard.platform.pg_ratelimit import PgLimiter  # noqa: E402
from bollard.platform.ratelimit import LocalLimiter  # noqa: E402
from bollard.platform.store.db import create_engine, migrate  # noqa: E402
from tests.support.databases import fresh_pg_state_database  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CALLS = int(os.environ.get("BENCH_CALLS", "256"))
CONCURRENCY = 64
LIMIT = RateLimit(requests=10**9, per_seconds=1.0)  # never refuses: every call does the full work


async def per_call_us(fn: Callable[[int], Awaitable[object]], concurrency: int) -> float:
    """Median over rounds of the wall time per call (µs) with ``concurrency`` callers."""
    results = []
    for _ in range(ROUNDS):
        per_caller = CALLS // concurrency

        async def caller(i: int, per_caller: int = per_caller) -> None:
            for _ in range(per_caller):
                await fn(i)

        t0 = time.perf_counter()
        await asyncio.gather(*[caller(i) for i in range(concurrency)])
        results.append((time.perf_counter() - t0) / (per_caller * concurrency) * 1e6)
    return statistics.median(results)


async def main() -> None:
    try:
        async with fresh_pg_state_database("bollard_bench") as url:
            engine = create_engine(url)
            try:
                await migrate(engine)
                await run(engine)
            finally:
                await engine.dispose()
    except BaseException as e:  # the skip of an unreachable PostgreSQL
        if type(e).__name__ in ("Skipped", "Failed"):
            print(f"skipped: {e}")
            return
        raise


async def run(engine: object) -> None:
    pg = PgLimiter(engine)  # type: ignore[arg-type]
    local = LocalLimiter()
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")  # type: ignore[attr-defined]

    async def select_1(_: int) -> None:
        async with auto.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def slot(limiter: object, key: str) -> None:
        lease = await limiter.acquire(key, CONCURRENCY)  # type: ignore[attr-defined]
        await limiter.release(lease)  # type: ignore[attr-defined]

    cases: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
        ("SELECT 1 (the direct path)", select_1),
        ("PG rate check, one key", lambda i: pg.check_rate("bench", LIMIT)),
        ("PG rate check, 64 keys", lambda i: pg.check_rate(f"bench/{i}", LIMIT)),
        ("PG slot acquire+release, 64 keys", lambda i: slot(pg, f"slot/{i}")),
        ("local rate check (SQLite default)", lambda i: local.check_rate("bench", LIMIT)),
        ("local slot acquire+release", lambda i: slot(local, "slot")),
    ]
    for _, fn in cases:  # warm the pool, prepared statements and slot rows
        await asyncio.gather(*[fn(i) for i in range(CONCURRENCY)])
    print(f"shared limits: µs per call, median of {ROUNDS} x {CALLS} calls")
    print(f"{'case':38} {'1 caller':>10} {'ratio':>6} {'64 callers':>11} {'ratio':>6}")
    base: tuple[float, float] | None = None
    for name, fn in cases:
        one = await per_call_us(fn, 1)
        many = await per_call_us(fn, CONCURRENCY)
        if base is None:
            base = (one, many)
        print(f"{name:38} {one:10.1f} {one / base[0]:6.2f} {many:11.1f} {many / base[1]:6.2f}")
    await pg.close()


if __name__ == "__main__":
    asyncio.run(main())
