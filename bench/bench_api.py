"""Benchmark: one ctx.http.get through the library and the HTTP API vs a plain httpx GET.

Run with ``make bench`` (or ``.venv/bin/python bench/bench_api.py``). Everything runs on
this machine: a stand-in HTTP server (uvicorn, a small JSON), a Bollard server
(``bollard serve`` in a subprocess), and the clients. Reports, in one run:

- the median (p50) and p90 latency of a direct ``httpx.AsyncClient.get`` to the stand-in;
- the same GET made by a connector through the execution service in-process ("library");
- the same through the HTTP API of a real server (sequential calls);
- executions per second through the HTTP API with 16 concurrent clients;
- a connector making 20 sequential requests vs 20 direct GETs (one execution = one run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import Upstream, bench_connector, bench_manifest, direct_baseline, line, rss_kib, timed  # noqa: E402
from tests.support.api import local_settings  # noqa: E402
from tests.support.standin import BollardServer, bollard  # noqa: E402

N = int(os.environ.get("BENCH_N", "300"))
CONCURRENCY = 16


async def main() -> None:
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime

    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "integrations" / "bench"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(bench_manifest(standin.url)))
        (folder / "connector.py").write_text(bench_connector(standin.url))

        direct_samples, direct20 = await direct_baseline(standin.url + "/small", N)
        settings = local_settings(root / "integrations", root / "lib")
        rt = Runtime(settings)
        await rt.start()
        try:

            async def lib_one() -> None:
                out = await rt.execution.invoke(Invocation("bench", "one"))
                assert out.status == 200, out.body

            async def lib_twenty() -> None:
                out = await rt.execution.invoke(Invocation("bench", "twenty"))
                assert out.status == 200, out.body

            await timed(lib_one, 50)
            lib_samples = await timed(lib_one, N)
            lib20 = await timed(lib_twenty, max(20, N // 10))
            layers = rt.isolation_layers()
        finally:
            await rt.stop()

        env = {
            "BOLLARD_SECRET_KEY": "bench",
            "BOLLARD_ALLOW_PRIVATE_EGRESS": "true",
            "BOLLARD_RELOAD": "false",
        }
        token = bollard(
            "token", "create", "--role", "agent", "--data-dir", str(root / "srv"), env=env
        ).strip()
        server = BollardServer(root / "integrations", root / "srv", env)
        try:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=server.url,
                headers=headers,
                timeout=30,
                limits=httpx.Limits(max_connections=CONCURRENCY),
            ) as api:

                async def api_one() -> None:
                    r = await api.post("/api/integrations/bench/operations/one", json={"params": {}})
                    assert r.status_code == 200, r.text

                await timed(api_one, 50)
                api_samples = await timed(api_one, N)

                total = N * 4
                done = 0
                start = time.perf_counter()

                async def worker() -> None:
                    nonlocal done
                    while done < total:
                        done += 1
                        await api_one()

                await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])
                throughput = total / (time.perf_counter() - start)
            rss = worker_rss(server.proc.pid)
        finally:
            server.stop()

    base = statistics.median(direct_samples)
    print(
        f"bench_api: N={N} on {os.cpu_count()} cores; sandbox layers: "
        + ", ".join(k for k, v in layers.items() if v and v is not False)
    )
    print(line("direct httpx GET", direct_samples))
    print(line("library: connector, one ctx.http.get", lib_samples, base))
    print(line("HTTP API: connector, one ctx.http.get", api_samples, base))
    print(f"{'HTTP API throughput':<38} {throughput:7.0f} executions/s ({CONCURRENCY} concurrent clients)")
    print(line("direct: 20 sequential GETs", direct20))
    print(line("library: connector, 20 ctx.http.get", lib20, statistics.median(direct20)))
    if rss:
        print(f"{'sandbox worker RSS':<38} {' '.join(f'{r / 1024:.1f} MB' for r in rss)}")


def worker_rss(server_pid: int) -> list[int]:
    """RSS (KiB) of the server's sandbox worker processes, from /proc."""
    out = []
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(server_pid)], capture_output=True, text=True
        ).stdout.split()
    except FileNotFoundError:
        return out
    for pid in children:
        with contextlib.suppress(OSError):  # it ended meanwhile
            if kib := rss_kib(int(pid)):
                out.append(kib)
    return out


if __name__ == "__main__":
    # The server runs on uvloop (uvicorn's default when installed); the in-process
    # "library" path and the direct GET share one loop here, so both use it too.
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
