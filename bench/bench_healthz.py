"""Benchmark: ``/healthz`` latency of a real ``bollard serve`` while DoS cases run against it.

Run with ``make bench`` (or ``.venv/bin/python bench/bench_healthz.py``). Hardening issue 9,
"Done when": the DoS cases of items 1-3, 14, 15 and 18, each for a bounded time
(``BENCH_CASE_S``, default 6 s; calls still running then get until ``BENCH_GRACE_S``,
default 60 s, to finish), with ``BENCH_CALLERS`` (default 2) callers repeating the call,
while one client samples ``GET /healthz`` every 10 ms. The baseline (no load) is measured
in the same run. It measures and asserts nothing, so it runs with or without the fixes.

Everything is local: the server on a free 127.0.0.1 port with a temporary data directory,
the integrations it writes, raw asyncio TCP upstreams on 127.0.0.1 (in a thread of their
own), and PostgreSQL at ``BOLLARD_TEST_PG_URL`` (the SQL cases are skipped without it).

Cases: a ``Content-Encoding: gzip, gzip`` bomb (256 MiB of zeros), a body of 1-byte chunks
(2 MB), an endless ``100 Continue`` upstream, a ``[{}] * 1.7 M`` result, ``pg_sleep`` past
the timeout, 100 rows x 4 MiB from PostgreSQL, and a ReDoS ``pattern`` parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.databases import PG_URL, credentials_from_url  # noqa: E402
from tests.support.integrations import no_params_op  # noqa: E402
from tests.support.standin import BollardServer, raw_servers  # noqa: E402

CASE_S = float(os.environ.get("BENCH_CASE_S", "6"))
GRACE_S = float(os.environ.get("BENCH_GRACE_S", "60"))
CALLERS = int(os.environ.get("BENCH_CALLERS", "2"))
SAMPLE_EVERY_S = 0.01
REDOS_PATTERN = "^([a-zA-Z0-9]+)+$"

CONNECTOR = """
URLS = {"bomb": BOMB, "chunks": CHUNKS, "continue": CONTINUE}

def execute(ctx):
    op = ctx.operation
    if op == "big":
        return [{}] * 1700000
    if op == "redos":
        return "matched"
    try:
        ctx.http.get(URLS[op] + "/")
    except Exception as e:
        return "refused: " + str(e)[:200]
    return "answered"
"""


# --- raw upstreams -----------------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


def bomb_body() -> bytes:
    inner = gzip.compress(bytes(256 * 1024 * 1024), compresslevel=9)
    return gzip.compress(inner, compresslevel=9)


async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> None:
    await _read_head(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip, gzip\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def one_byte_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"1\r\nx\r\n" * 4096
    for _ in range(2 * 1024 * 1024 // 4096):
        writer.write(chunk)
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def endless_continue(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    burst = b"HTTP/1.1 100 Continue\r\n\r\n" * 256
    while True:
        writer.write(burst)
        await writer.drain()


def start_upstreams() -> dict[str, int]:
    """Start the raw upstreams in a daemon thread with its own loop; their ports."""
    return raw_servers(
        {
            "bomb": functools.partial(bomb, body=bomb_body()),
            "chunks": one_byte_chunks,
            "continue": endless_continue,
        },
        ready_timeout_s=30,
    )


# --- integrations --------------------------------------------------------------------------


def write_integrations(root: Path, ports: dict[str, int]) -> None:
    hosts = [f"http://127.0.0.1:{p}" for p in ports.values()]
    consts = "".join(f'{k.upper()} = "http://127.0.0.1:{p}"\n' for k, p in ports.items())
    dos = root / "dos"
    dos.mkdir(parents=True)
    manifest = {
        "title": "DoS cases",
        "description": "Upstreams and results that cost the host",
        "version": 1,
        "type": "rest_api",
        "authMethod": "none",
        "allowedHosts": hosts,
        "operations": [
            no_params_op("bomb"),
            no_params_op("chunks"),
            no_params_op("continue", timeoutMs=5000),
            no_params_op(
                "big", limits={"maxResultBytes": 8 * 1024 * 1024, "memoryMb": 1024}, timeoutMs=60000
            ),
            {
                "name": "redos",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"value": {"type": "string", "pattern": REDOS_PATTERN}},
                },
            },
        ],
    }
    (dos / "config.json").write_text(json.dumps(manifest, indent=2))
    (dos / "connector.py").write_text(consts + CONNECTOR)
    pg = root / "pgdos"
    pg.mkdir()
    sql_manifest = {
        "title": "PostgreSQL DoS cases",
        "description": "Slow and large SQL reads",
        "version": 1,
        "type": "sql",
        "authMethod": "basic_auth",
        "secretBindings": ["username"],
        "sqlConnectionConfig": {"engine": "postgres"},
        "sqlOperations": [
            {"name": "sleep", "query": "SELECT pg_sleep(40) AS slept", "timeoutMs": 1000},
            {"name": "rows", "query": "SELECT repeat('x', 4*1024*1024) AS x FROM generate_series(1, 100)"},
        ],
    }
    (pg / "config.json").write_text(json.dumps(sql_manifest, indent=2))


# --- measuring --------------------------------------------------------------------------------


async def sample_healthz(client: httpx.AsyncClient, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            await client.get("/healthz", timeout=60)
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(SAMPLE_EVERY_S)


async def caller(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], until: float, calls: list[str]
) -> None:
    while time.monotonic() < until:
        try:
            r = await client.post(path, json=body, timeout=GRACE_S)
            calls.append(str(r.status_code))
        except httpx.HTTPError as e:
            calls.append(type(e).__name__)


async def run_case(
    url: str, token: str, path: str | None, body: dict[str, Any]
) -> tuple[list[float], list[str]]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    calls: list[str] = []
    async with (
        httpx.AsyncClient(base_url=url) as probe,
        httpx.AsyncClient(
            base_url=url, headers=headers, limits=httpx.Limits(max_connections=CALLERS)
        ) as load,
    ):
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_healthz(probe, stop, latencies))
        until = time.monotonic() + CASE_S
        if path is None:
            await asyncio.sleep(CASE_S)
        else:
            await asyncio.gather(*(caller(load, path, body, until, calls) for _ in range(CALLERS)))
        stop.set()
        await sampler
    return latencies, calls


def pg_reachable() -> bool:
    creds = credentials_from_url(PG_URL)
    try:
        socket.create_connection((creds["server"], int(creds.get("port", 5432))), timeout=2).close()
    except OSError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main() -> None:
    ports = start_upstreams()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_integrations(root / "integrations", ports)
        env = {
            "BOLLARD_SECRET_KEY": "bench-secret-key",
            "BOLLARD_ALLOW_PRIVATE_EGRESS": "true",
            # the local test database's user is a superuser (refused by default, DESIGN §5)
            "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES": "true",
        }
        server = BollardServer(root / "integrations", root / "data", env)
        try:
            token = (root / "data" / "admin.token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            pg_ok = pg_reachable()
            if pg_ok:
                values = {k: str(v) for k, v in credentials_from_url(PG_URL).items()}
                httpx.put(
                    f"{server.url}/api/integrations/pgdos/credentials",
                    json={"values": values},
                    headers=headers,
                ).raise_for_status()
            op = "/api/integrations/{}/operations/{}"
            redos = {"params": {"value": "a" * 27 + "!"}}
            cases: list[tuple[str, str | None, dict[str, Any]]] = [
                ("baseline (no load)", None, {}),
                ("gzip, gzip bomb", op.format("dos", "bomb"), {}),
                ("1-byte chunks", op.format("dos", "chunks"), {}),
                ("endless 100 Continue", op.format("dos", "continue"), {}),
                ("[{}] * 1.7M result", op.format("dos", "big"), {}),
                ("ReDoS pattern", op.format("dos", "redos"), redos),
            ]
            if pg_ok:
                cases[5:5] = [
                    ("pg_sleep past timeout", op.format("pgdos", "sleep"), {}),
                    ("100 rows x 4 MiB", op.format("pgdos", "rows"), {}),
                ]
            rows = []
            for name, path, body in cases:
                latencies, calls = await run_case(server.url, token, path, body)
                statuses = ",".join(sorted(set(calls))) or "-"
                rows.append((name, latencies, len(calls), statuses))
                print(f"  done: {name}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    print(
        f"/healthz latency of `bollard serve` under each case ({CASE_S:g} s per case, {CALLERS} callers, "
        f"one probe every {SAMPLE_EVERY_S * 1000:g} ms)"
    )
    print(f"{'case':<24} {'p50 ms':>8} {'p99 ms':>9} {'max ms':>9} {'probes':>7} {'calls':>6}  statuses")
    for name, latencies, n_calls, statuses in rows:
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        worst = max(latencies) * 1000 if latencies else float("nan")
        print(
            f"{name:<24} {p50:>8.1f} {p99:>9.1f} {worst:>9.1f} {len(latencies):>7} {n_calls:>6}  {statuses}"
        )
    if not any(name.startswith("pg_") for name, *_ in rows):
        print("(PostgreSQL unavailable: the SQL cases were skipped)")


if __name__ == "__main__":
    asyncio.run(main())
