"""SQL runner benchmarks (a script, not a test).

(a) The same 100-row SELECT through ``run_sql`` and through raw asyncpg on one pool
    each, interleaved in a random order, none timed while run_sql's deferred work runs:
    p50 per call and the ratio (target ≤ 1.3×). Raw asyncpg's
    ``Pool.fetch`` is two round trips (the query, then the pool's reset); ``run_sql`` is
    two on the caller's path (BEGIN READ ONLY, the capped Bind/Execute) and one after it
    (ROLLBACK + session reset). "back-to-back" times a call made right after another on
    the same one-connection pool, so it waits for that reset.
(b) On a 1,000,000-row table with a cap of 100 rows: time and peak Python memory of the
    capped ``SELECT * FROM big`` against ``SELECT * FROM big LIMIT 100``, per engine.

Usage: ``python bench/bench_sql.py [--engines postgres,mysql,sqlite] [--iterations N]``.
Servers come from BOLLARD_TEST_PG_URL / BOLLARD_TEST_MYSQL_URL (see tests/support/databases.py
for the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bollard.platform.sql.engines import EngineHandle, build_engine  # noqa: E402
from bollard.platform.sql.runner import run_sql  # noqa: E402
from tests.support.databases import MYSQL_URL, PG_URL, credentials_from_url  # noqa: E402

BIG_ROWS = 1_000_000
CAP = 100
PROFILE = False  # --profile: cProfile the runner's calls after timing them


async def profile_calls(title: str, fn: Callable[[], Awaitable[Any]], handle: Any, n: int) -> None:
    """Run ``fn`` ``n`` times under cProfile and print the top frames by own time with
    their share of the profiled time (cProfile inflates small functions: read shares)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        await fn()
        await handle.quiesce()
    prof.disable()
    stats = pstats.Stats(prof).strip_dirs()
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"    profile of {n} calls, {title}: {total:.2f} s; top frames by own time")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:30]  # type: ignore[attr-defined]
    for (file, line, name), (_cc, nc, tt, ct, _callers) in rows:
        print(f"    {100 * tt / total:5.1f}% own {100 * ct / total:5.1f}% cum {nc:7d}  {file}:{line}({name})")


def _pg_dsn() -> str:
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) * 1000


async def bench_overhead(iterations: int) -> dict[str, float]:
    """(a) runner vs raw asyncpg on the same 100-row SELECT; returns the p50s (ms):
    ``ours``, ``raw``, ``json`` (raw + dicts), ``safe`` (raw, same protocol)."""
    table = f"bench_{uuid.uuid4().hex[:8]}"
    raw = await asyncpg.create_pool(_pg_dsn(), min_size=1, max_size=1)
    handle = build_engine(
        "postgres",
        {"security": {"maxConnectionPoolSize": 1}},
        credentials_from_url(PG_URL),
        allow_privileged_roles=True,  # the test server's role is a superuser
    )
    try:
        await raw.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric(10,2), "
            "created timestamp, flag boolean)"
        )
        await raw.execute(
            f"INSERT INTO {table} SELECT i, 'guest ' || i, i * 1.25, "
            "timestamp '2024-01-01' + i * interval '1 hour', i % 2 = 0 "
            "FROM generate_series(1, 100) i"
        )
        sql_raw = f"SELECT id, name, amount, created, flag FROM {table} WHERE id <= $1"
        sql_ours = f"SELECT id, name, amount, created, flag FROM {table} WHERE id <= @n"
        schema = {"properties": {"n": {"type": "integer"}}}

        async def ours() -> None:
            r = await run_sql(
                handle,
                query=sql_ours,
                operation_type="read",
                schema=schema,
                params={"n": 100},
                security={},
                read_only_connection=False,
            )
            assert r.count == 100

        async def baseline() -> None:
            rows = await raw.fetch(sql_raw, 100)
            assert len(rows) == 100

        async def baseline_json() -> None:
            # raw asyncpg plus what the runner also does: rows to JSON-friendly dicts
            rows = await raw.fetch(sql_raw, 100)
            [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else float(v) if k == "amount" else v)
                    for k, v in r.items()
                }
                for r in rows
            ]

        async def baseline_safe() -> None:
            # raw asyncpg doing what a capped read must: a read-only transaction and
            # a portal read of at most cap + 1 rows, then the same dict conversion
            async with raw.acquire() as conn:
                tr = conn.transaction(readonly=True)
                await tr.start()
                try:
                    rows = [r async for r in conn.cursor(sql_raw, 100, prefetch=1001)]
                finally:
                    await tr.rollback()
            [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else float(v) if k == "amount" else v)
                    for k, v in r.items()
                }
                for r in rows
            ]

        for _ in range(200):  # warm-up: pools, prepared statements, compile cache
            await ours()
            await baseline()
        times: dict[str, list[float]] = {k: [] for k in ("ours", "b2b", "raw", "json", "safe")}
        calls: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("ours", ours),
            ("raw", baseline),
            ("json", baseline_json),
            ("safe", baseline_safe),
        ]
        order = random.Random(1)
        for _ in range(iterations):
            order.shuffle(calls)  # no variant always follows the same one
            for name, fn in calls:
                # no call is timed while run_sql's ROLLBACK + reset still runs
                await handle.quiesce()
                times[name].append(await _timed(fn))
                if name == "ours":
                    times["b2b"].append(await _timed(ours))
        t_ours, t_ours_b2b, t_raw, t_raw_json, t_raw_safe = (
            times[k] for k in ("ours", "b2b", "raw", "json", "safe")
        )
        if PROFILE:
            await profile_calls("postgres run_sql", ours, handle, iterations)
        p50_ours = statistics.median(t_ours)
        p50_raw = statistics.median(t_raw)
        p50_raw_json = statistics.median(t_raw_json)
        print(f"(a) 100-row SELECT, {iterations} calls each, interleaved in random order")
        print(f"    raw asyncpg           p50 {p50_raw:.3f} ms")
        print(f"    raw asyncpg + dicts   p50 {p50_raw_json:.3f} ms")
        p50_raw_safe = statistics.median(t_raw_safe)
        print(f"    raw asyncpg, read-only tx + capped portal + dicts p50 {p50_raw_safe:.3f} ms")
        print(f"    run_sql               p50 {p50_ours:.3f} ms")
        p50_b2b = statistics.median(t_ours_b2b)
        print(f"    run_sql back-to-back  p50 {p50_b2b:.3f} ms ({p50_b2b / p50_raw:.2f}x raw)")
        print(
            f"    ratio run_sql / raw   {p50_ours / p50_raw:.2f}x "
            f"(vs raw + dicts {p50_ours / p50_raw_json:.2f}x, "
            f"vs raw same protocol {p50_ours / p50_raw_safe:.2f}x)"
        )
        return {"ours": p50_ours, "raw": p50_raw, "json": p50_raw_json, "safe": p50_raw_safe}
    finally:
        await raw.execute(f"DROP TABLE IF EXISTS {table}")
        await raw.close()
        await handle.dispose()


async def bench_overhead_other(engine: str, iterations: int) -> dict[str, float]:
    """(c) run_sql vs the raw driver returning dicts on a 100-row SELECT: aiosqlite for
    SQLite, aiomysql for MariaDB/MySQL; interleaved in a random order. Returns the p50s (ms)."""
    table = f"bench_{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp())
    rows_sql = [(i, f"guest {i}", i * 1.25, f"2024-01-01 {i % 24:02d}:00:00", i % 2) for i in range(1, 101)]
    if engine == "sqlite":
        import sqlite3

        import aiosqlite

        path = tmp / "bench.db"
        con = sqlite3.connect(path)
        con.execute(
            f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount real, created text, flag int)"
        )
        con.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", rows_sql)
        con.commit()
        con.close()
        raw: Any = await aiosqlite.connect(str(path))
        handle = build_engine(
            "sqlite",
            {"security": {"maxConnectionPoolSize": 1}},
            {"database": str(path)},
            integration_dir=tmp,
            data_dir=tmp / "data",
        )
        sql_raw = f"SELECT id, name, amount, created, flag FROM {table} WHERE id <= ?"

        async def baseline() -> None:
            async with raw.execute(sql_raw, (100,)) as cur:
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
            assert len(rows) == 100

        async def close_raw() -> None:
            await raw.close()
    else:
        import aiomysql

        creds = credentials_from_url(MYSQL_URL)
        kw = {
            "host": creds["server"],
            "port": creds.get("port", 3306),
            "user": creds.get("username"),
            "password": creds.get("password", ""),
            "db": creds["database"],
            "autocommit": True,
        }
        raw = await aiomysql.create_pool(minsize=1, maxsize=1, **kw)
        async with raw.acquire() as c, c.cursor() as cur:
            await cur.execute(
                f"CREATE TABLE {table} (id int PRIMARY KEY, name varchar(40), amount double, "
                "created datetime, flag tinyint)"
            )
            await cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", rows_sql)
        handle = build_engine("mysql", {"security": {"maxConnectionPoolSize": 1}}, creds)
        sql_raw = f"SELECT id, name, amount, created, flag FROM {table} WHERE id <= %s"

        async def baseline() -> None:
            async with raw.acquire() as c, c.cursor(aiomysql.DictCursor) as cur:
                await cur.execute(sql_raw, (100,))
                rows = [
                    {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()}
                    for r in await cur.fetchall()
                ]
            assert len(rows) == 100

        async def close_raw() -> None:
            async with raw.acquire() as c, c.cursor() as cur:
                await cur.execute(f"DROP TABLE IF EXISTS {table}")
            raw.close()
            await raw.wait_closed()

    sql_ours = f"SELECT id, name, amount, created, flag FROM {table} WHERE id <= @n"

    async def ours() -> None:
        r = await run_sql(
            handle,
            query=sql_ours,
            operation_type="read",
            schema={"properties": {"n": {"type": "integer"}}},
            params={"n": 100},
            security={},
            read_only_connection=False,
        )
        assert r.count == 100

    try:
        for _ in range(100):
            await ours()
            await baseline()
        times: dict[str, list[float]] = {"ours": [], "raw": []}
        calls = [("ours", ours), ("raw", baseline)]
        order = random.Random(2)
        for _ in range(iterations):
            order.shuffle(calls)
            for name, fn in calls:
                await handle.quiesce()  # no call is timed while another's check-in still runs
                times[name].append(await _timed(fn))
        p50 = {k: statistics.median(v) for k, v in times.items()}
        if PROFILE:
            await profile_calls(f"{engine} run_sql", ours, handle, iterations)
        driver = "aiosqlite" if engine == "sqlite" else "aiomysql"
        print(f"(c) {engine}: 100-row SELECT, {iterations} calls each, interleaved in random order")
        print(f"    raw {driver} + dicts p50 {p50['raw']:.3f} ms")
        ratio = p50["ours"] / p50["raw"]
        print(f"    run_sql               p50 {p50['ours']:.3f} ms ({ratio:.2f}x raw + dicts)")
        return p50
    finally:
        await close_raw()
        await handle.dispose()


async def _setup_big(engine: str, tmp: Path) -> tuple[EngineHandle, str, Callable[[], Awaitable[None]]]:
    table = f"bench_big_{uuid.uuid4().hex[:8]}"
    if engine == "postgres":
        conn = await asyncpg.connect(_pg_dsn())
        await conn.execute(f"CREATE UNLOGGED TABLE {table} (id int, name text, amount numeric)")
        await conn.execute(
            f"INSERT INTO {table} SELECT i, 'row ' || i, i * 0.5 FROM generate_series(1, {BIG_ROWS}) i"
        )
        await conn.close()

        async def drop() -> None:
            c = await asyncpg.connect(_pg_dsn())
            await c.execute(f"DROP TABLE IF EXISTS {table}")
            await c.close()

        return (
            build_engine("postgres", {}, credentials_from_url(PG_URL), allow_privileged_roles=True),
            table,
            drop,
        )
    if engine == "mysql":
        import aiomysql

        creds = credentials_from_url(MYSQL_URL)
        kw = {
            "host": creds["server"],
            "port": creds.get("port", 3306),
            "user": creds.get("username"),
            "password": creds.get("password", ""),
            "db": creds["database"],
            "autocommit": True,
        }
        conn = await aiomysql.connect(**kw)
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE TABLE {table} (id int, name varchar(40), amount decimal(12,1))")
            await cur.execute(
                f"INSERT INTO {table} SELECT seq, CONCAT('row ', seq), seq * 0.5 FROM seq_1_to_{BIG_ROWS}"
            )
        conn.close()

        async def drop() -> None:
            c = await aiomysql.connect(**kw)
            async with c.cursor() as cur:
                await cur.execute(f"DROP TABLE IF EXISTS {table}")
            c.close()

        return build_engine("mysql", {}, creds), table, drop
    import sqlite3

    path = tmp / "big.db"
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE {table} (id int, name text, amount numeric)")
    con.execute(
        f"INSERT INTO {table} WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
        f"WHERE i < {BIG_ROWS}) SELECT i, 'row ' || i, i * 0.5 FROM s"
    )
    con.commit()
    con.close()

    async def nothing() -> None:
        return None

    return (
        build_engine("sqlite", {}, {"database": str(path)}, integration_dir=tmp, data_dir=tmp),
        table,
        nothing,
    )


async def bench_cap(engine: str, repeats: int) -> dict[str, tuple[float, int]]:
    """(b) capped SELECT * on 1M rows vs LIMIT 100: time and peak memory; returns
    ``{label: (p50 ms, peak bytes)}``."""
    out: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        handle, table, drop = await _setup_big(engine, Path(d))
        setup_s = time.perf_counter() - t0
        try:
            queries = {
                "capped SELECT *": f"SELECT * FROM {table}",
                "LIMIT 100": f"SELECT * FROM {table} LIMIT 100",
            }

            async def call(sql: str) -> None:
                r = await run_sql(
                    handle,
                    query=sql,
                    operation_type="read",
                    schema={},
                    params={},
                    security={"maxResultRows": CAP},
                    read_only_connection=False,
                )
                assert r.count == CAP

            for sql in queries.values():
                await call(sql)  # warm-up
            print(f"(b) {engine}: {BIG_ROWS:,} rows (setup {setup_s:.1f} s), cap {CAP}")
            for label, sql in queries.items():
                times = [await _timed(lambda s=sql: call(s)) for _ in range(repeats)]
                tracemalloc.start()
                await call(sql)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                print(
                    f"    {label:<16} p50 {statistics.median(times):8.2f} ms   "
                    f"peak Python memory {peak / 1024:8.1f} KiB"
                )
                out[label] = (statistics.median(times), peak)
            return out
        finally:
            await handle.dispose()
            await drop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="postgres,mysql,sqlite")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-big", action="store_true", help="skip (b), the 1,000,000-row tables")
    ap.add_argument("--profile", action="store_true", help="(a), (c): cProfile run_sql's calls after timing")
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}")
    if not args.skip_overhead:
        if "postgres" in args.engines:
            await bench_overhead(args.iterations)
        for engine in args.engines.split(","):
            if engine.strip() in ("sqlite", "mysql"):
                await bench_overhead_other(engine.strip(), args.iterations)
    for engine in [] if args.skip_big else args.engines.split(","):
        await bench_cap(engine.strip(), args.repeats)


if __name__ == "__main__":
    asyncio.run(main())
