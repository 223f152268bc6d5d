"""Benchmark: mixed load with faults against two replicas on one PostgreSQL (issue 14 item 5).

Run with ``make bench`` (or ``.venv/bin/python bench/bench_load.py``); needs PostgreSQL at
``BOLLARD_TEST_PG_URL`` (skipped without it). Two real ``bollard serve`` share a fresh
state database and one integrations directory (``tests/support/load.py``): REST through
the sandbox (a read and an approval-free write), SQL reads on PostgreSQL and on SQLite,
and a ``faulty`` integration whose operations loop forever, bomb memory, recurse without
end, raise, return 5 MiB, or call a slow (30 s) or a gzip-bomb upstream.

After a warm-up (``BENCH_LOAD_WARMUP`` healthy calls, default 300) it sends
``BENCH_LOAD_BASELINE`` (default 2 000) healthy calls and ``BENCH_LOAD_CALLS`` (default
10 000) with ``BENCH_LOAD_FAULTS`` (default 5 %) faults, each at ``BENCH_LOAD_CONCURRENCY``
(default 64) callers alternating over the two replicas. The two are interleaved: cut into
blocks of about ``BENCH_LOAD_BLOCK`` calls (default 500; the same size for both, so each
block's ramp-down weighs on both alike), the baseline blocks spread evenly among the
faulty ones, and each phase's latencies pooled over its blocks, so a change in the
machine's load during the run moves both phases, not the ratio. ``BENCH_LOAD_SKIP``
leaves fault kinds out by name, to see which ones cost. A small check:
``BENCH_LOAD_WARMUP=50 BENCH_LOAD_BASELINE=100 BENCH_LOAD_CALLS=200 BENCH_LOAD_BLOCK=50``.
It prints, per kind of call, how
many got exactly the status and error code they must, and the healthy calls' p50/p99
with and without the faults (the target: p99 within 2×); then both replicas' liveness,
every answered write's execution record, and each replica's RSS (the server process,
and with its sandbox workers) after the warm-up and at the end.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.databases import fresh_pg_state_database, pg_credentials  # noqa: E402
from tests.support.load import (  # noqa: E402
    FAULTS,
    HEALTHY,
    Case,
    Result,
    plan,
    recorded_tags,
    rss_kib,
    run_load,
    start_upstreams,
    write_integrations,
)
from tests.support.standin import BollardServer, bollard  # noqa: E402

CALLS = int(os.environ.get("BENCH_LOAD_CALLS", "10000"))
BASELINE = int(os.environ.get("BENCH_LOAD_BASELINE", "2000"))
WARMUP = int(os.environ.get("BENCH_LOAD_WARMUP", "300"))
FAULT_SHARE = float(os.environ.get("BENCH_LOAD_FAULTS", "0.05"))
CONCURRENCY = int(os.environ.get("BENCH_LOAD_CONCURRENCY", "64"))
BLOCK = int(os.environ.get("BENCH_LOAD_BLOCK", "500"))
# fault kinds left out (comma-separated names, e.g. "endless loop,5 MiB result"): which ones cost
SKIP = {name.strip() for name in os.environ.get("BENCH_LOAD_SKIP", "").split(",") if name.strip()}


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` and all its descendants (KiB)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += rss_kib(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def blocks(n: int, size: int) -> list[int]:
    """``n`` calls cut into blocks of about ``size`` (sizes differ by at most one)."""
    count = max(1, round(n / size)) if n else 0
    return [n // count + (i < n % count) for i in range(count)]


def schedule(n_base: int, n_faulty: int) -> list[bool]:
    """The order of ``n_base`` baseline blocks (``True``) and ``n_faulty`` faulty ones
    (``False``): the baseline blocks spread evenly, each in the middle of its share."""
    total = n_base + n_faulty
    slots = {int((j + 0.5) * total / n_base) for j in range(n_base)}
    return [k in slots for k in range(total)]


async def interleaved(
    urls: list[str], token: str, kinds: list[Case]
) -> tuple[list[Result], float, list[Result], float]:
    """The baseline (``BASELINE`` healthy calls) and the faulty phase (``CALLS`` with
    ``FAULT_SHARE`` faults of ``kinds``) in alternating blocks; returns each phase's
    results and seconds, pooled over its blocks."""
    base_sizes, faulty_sizes = blocks(BASELINE, BLOCK), blocks(CALLS, BLOCK)
    base: list[Result] = []
    loaded: list[Result] = []
    base_s = loaded_s = 0.0
    order = schedule(len(base_sizes), len(faulty_sizes))
    b = f = 0
    for k, is_base in enumerate(order):
        t0 = time.perf_counter()
        if is_base:
            base += await run_load(urls, token, plan(base_sizes[b], 0.0, seed=2 + b), CONCURRENCY)
            base_s += time.perf_counter() - t0
            b += 1
        else:
            shift = f % len(kinds) if kinds else 0
            rotated = kinds[shift:] + kinds[:shift]  # an even mix of kinds over the blocks
            cases = plan(faulty_sizes[f], FAULT_SHARE, seed=1000 + f, faults_from=rotated)
            loaded += await run_load(urls, token, cases, CONCURRENCY)
            loaded_s += time.perf_counter() - t0
            f += 1
        phase = "baseline" if is_base else "faults"
        print(
            f"  block {k + 1}/{len(order)} ({phase}) done ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return base, base_s, loaded, loaded_s


def by_case(results: list[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        out[r.case.name].append(r)
    return out


async def main() -> None:
    try:
        async with fresh_pg_state_database("bollard_load") as url:
            await run(url)
    except BaseException as e:  # the skip of an unreachable PostgreSQL
        if type(e).__name__ in ("Skipped", "Failed"):
            print(f"skipped: {e}")
            return
        raise


async def run(url: str) -> None:
    ports = start_upstreams()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_integrations(root / "integrations", ports)
        env = {
            "BOLLARD_DATABASE_URL": url,
            "BOLLARD_SECRET_KEY": "bench-shared-key",
            "BOLLARD_RELOAD": "false",
            "BOLLARD_ALLOW_PRIVATE_EGRESS": "true",  # the upstreams are on 127.0.0.1
            "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES": "true",
        }
        token = bollard("token", "create", "--role", "admin", "--data-dir", str(root / "a"), env=env).strip()
        servers = [BollardServer(root / "integrations", root / d, env) for d in ("a", "b")]
        urls = [s.url for s in servers]
        try:
            values = pg_credentials()
            httpx.put(
                f"{urls[0]}/api/integrations/pgread/credentials",
                json={"values": values},
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
            await run_load(urls, token, plan(WARMUP, 0.0, seed=1), CONCURRENCY)
            rss_start = [(rss_kib(s.proc.pid), tree_rss_kib(s.proc.pid)) for s in servers]
            kinds = [f for f in FAULTS if f.name not in SKIP]
            base, base_s, loaded, loaded_s = await interleaved(urls, token, kinds)
            alive = [
                s.proc.poll() is None and httpx.get(f"{s.url}/healthz", timeout=30).is_success
                for s in servers
            ]
            rss_end = [(rss_kib(s.proc.pid), tree_rss_kib(s.proc.pid)) for s in servers]
            answered = {r.tag for r in loaded + base if r.tag is not None and r.status == 200}
            recorded = await recorded_tags(urls[1], token)
            for s in servers:  # what the servers logged as errors, should any answer be wrong
                errors = [ln for ln in s.log.read_text().splitlines() if "ERROR" in ln or "Traceback" in ln]
                print(f"  {s.url}: {len(errors)} error lines {errors[:5]}", file=sys.stderr, flush=True)
        finally:
            for s in servers:
                s.stop()
    report(base, base_s, loaded, loaded_s, alive, rss_start, rss_end, answered, recorded)


def report(
    base: list[Result],
    base_s: float,
    loaded: list[Result],
    loaded_s: float,
    alive: list[bool],
    rss_start: list[tuple[int, int]],
    rss_end: list[tuple[int, int]],
    answered: set[str],
    recorded: set[str],
) -> None:
    print(
        f"load with faults: {len(loaded)} calls ({FAULT_SHARE:.0%} faults) at concurrency {CONCURRENCY} "
        f"over 2 replicas in {loaded_s:.0f} s ({len(loaded) / loaded_s:.0f}/s); "
        f"baseline {len(base)} healthy calls in {base_s:.0f} s, interleaved in blocks of ~{BLOCK}"
    )
    print(
        f"{'call':<22} {'calls':>6} {'right':>6}  {'p50 ms':>7} {'p99 ms':>7}  "
        f"{'p50 base':>8} {'p99 base':>8} {'p99 ×':>6}"
    )
    base_cases, loaded_cases = by_case(base), by_case(loaded)
    for case in HEALTHY + FAULTS:
        got = loaded_cases.get(case.name, [])
        times = [r.seconds for r in got]
        right = sum(r.right for r in got)
        line = f"{case.name:<22} {len(got):>6} {right:>6}  {pct(times, 50):>7.1f} {pct(times, 99):>7.1f}"
        if case in HEALTHY:
            b = [r.seconds for r in base_cases.get(case.name, [])]
            line += f"  {pct(b, 50):>8.1f} {pct(b, 99):>8.1f} {pct(times, 99) / pct(b, 99):>6.2f}"
        print(line)
    wrong = Counter((r.case.name, r.status, r.code) for r in loaded + base if not r.right)
    print(f"wrong statuses: {dict(wrong) if wrong else 'none'}")
    print(f"both replicas alive after the run: {all(alive)}")
    print(f"answered writes without an execution record: {len(answered - recorded)} of {len(answered)}")
    for name, (s0, t0), (s1, t1) in zip("ab", rss_start, rss_end, strict=True):
        print(
            f"replica {name} RSS after warm-up → end: server {s0 / 1024:.0f} → {s1 / 1024:.0f} MiB, "
            f"with sandbox workers {t0 / 1024:.0f} → {t1 / 1024:.0f} MiB"
        )


if __name__ == "__main__":
    asyncio.run(main())
