"""The SQLite read's own work (what runs in its worker thread), against sqlite3 + dicts.

Run with ``.venv/bin/python bench/profile_sqlite_read.py [--n 3000] [--profile]``. Times,
synchronously on one thread (no event loop, no thread hand-off), the plan
(``build_plan``), the path check (``_reopen_check``) and ``sqlite_read`` on a read-only
connection for bench_sql's 100-row SELECT, against plain ``sqlite3`` returning dicts;
``--profile`` prints cProfile's top frames of the runner's part by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqlalchemy.dialects import sqlite as sqlite_dialect  # noqa: E402

from bollard.platform.sql.plan import build_plan  # noqa: E402
from bollard.platform.sql.sqlite import _reopen_check  # noqa: E402
from bollard.platform.sql.sqlite_reads import _ReadConnection, sqlite_read  # noqa: E402

QUERY = "SELECT id, name, amount, created, flag FROM t WHERE id <= @n"
SCHEMA = {"properties": {"n": {"type": "integer"}}}


def p50_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp()).resolve() / "bench.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id int PRIMARY KEY, name text, amount real, created text, flag int)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        [(i, f"guest {i}", i * 1.25, f"2024-01-01 {i % 24:02d}:00:00", i % 2) for i in range(1, 101)],
    )
    con.commit()
    con.close()
    rc = _ReadConnection(path, "database", 5.0)
    raw = sqlite3.connect(path)
    dialect = sqlite_dialect.dialect()
    cache: dict[Any, Any] = {}

    def plan() -> Any:
        return build_plan("sqlite", QUERY, SCHEMA, {"n": 100}, read=True, cap=1000, timeout_ms=30000)

    def ours() -> Any:
        _reopen_check(path, "database")
        return sqlite_read(rc.conn, rc.deadline, plan=plan(), dialect=dialect, cache=cache)

    def base() -> Any:
        cur = raw.execute("SELECT id, name, amount, created, flag FROM t WHERE id <= ?", (100,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    assert ours().count == len(base()) == 100
    for fn in (ours, base):
        p50_us(fn, 300)
    print(
        f"runner's read {p50_us(ours, args.n):.0f} µs, sqlite3 + dicts {p50_us(base, args.n):.0f} µs; "
        f"of the runner's: plan {p50_us(plan, args.n):.1f} µs, "
        f"path check {p50_us(lambda: _reopen_check(path, 'database'), args.n):.1f} µs"
    )
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.n):
            ours()
        prof.disable()
        stats = pstats.Stats(prof).strip_dirs()
        total = stats.total_tt  # type: ignore[attr-defined]
        print(f"profiled {total:.2f} s for {args.n} reads; top frames by own time:")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:20]  # type: ignore[attr-defined]
        for (file, line, name), (_cc, nc, tt, ct, _callers) in rows:
            print(f"{100 * tt / total:5.1f}% own {100 * ct / total:5.1f}% cum {nc:7d}  {file}:{line}({name})")


if __name__ == "__main__":
    main()
