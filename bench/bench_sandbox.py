"""Sandbox benchmark: the cost of running a connector's HTTP call through the pool.

Run: ``.venv/bin/python bench/bench_sandbox.py [--n 500] [--uvloop]``

Starts a local HTTP server (a separate process, HTTP/1.1 keep-alive) serving a small
JSON document and measures, in the same run and interleaved:

(a) a direct ``httpx.AsyncClient.get`` of that document;
(b) ``SandboxPool.run`` of a connector doing one ``ctx.http.get`` of it, whose
    ``http_handler`` uses one shared ``httpx.AsyncClient`` (warm, reused workers);
(c) a connector doing 20 sequential requests, against 20 direct GETs;
(d) a cold start (new key: spawn, isolate, load) and the workers' RSS (/proc);
(e) one ``ctx.http.get`` of a 1 MiB text body, against a direct GET of it (the cost
    of moving a body through the worker's pipe).

Targets (DESIGN §4): (b) p50 within 1.5x of (a); worker RSS <= 60 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from bollard.sandbox.job import Job
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from bollard.sandbox.protocol import HttpRequest, HttpResponse

SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    BODY = b'{"id": 42, "name": "widget", "tags": ["a", "b"], "price": 9.5}'
    BIG = b"0123456789abcdef" * 65536  # 1 MiB

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes
        def log_message(self, *args):
            pass
        def do_GET(self):
            big = self.path == "/big"
            body = BIG if big else BODY
            self.send_response(200)
            self.send_header("Content-Type", "text/plain" if big else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)

ONE_GET = """
def execute(ctx):
    r = ctx.http.get(ctx.params["url"])
    return {"status": r.status, "item": r.body}
"""

BIG_GET = """
def execute(ctx):
    return len(ctx.http.get(ctx.params["url"]).body)
"""

TWENTY_GETS = """
def execute(ctx):
    total = 0
    for i in range(20):
        total += ctx.http.get(ctx.params["url"]).body["id"]
    return total
"""


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(n: int) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = f"http://127.0.0.1:{server.stdout.readline().strip()}/item"
    client = httpx.AsyncClient()
    pool = SandboxPool(workers_per_integration=1)
    limits = Limits()

    async def handler(request: HttpRequest) -> HttpResponse:
        r = await client.get(request.url, headers=request.headers, params=request.params)
        return HttpResponse(r.status_code, r.reason_phrase, dict(r.headers), r.content, str(r.url))

    async def direct(target: str = url) -> float:
        t = time.perf_counter()
        r = await client.get(target)
        r.json() if target == url else r.text
        return (time.perf_counter() - t) * 1000

    async def sandboxed(source: str, key: str, target: str = url) -> float:
        t = time.perf_counter()
        await pool.run(
            Job(
                key=key,
                source=source,
                entrypoint="execute",
                operation="get",
                params={"url": target},
                secrets={},
                http_handler=handler,
                limits=limits,
            )
        )
        return (time.perf_counter() - t) * 1000

    try:
        # Cold starts: a new key each time (spawn + isolation + load + first run).
        cold = [await sandboxed(ONE_GET, f"cold-{i}:v1") for i in range(5)]
        for i in range(5):
            pool.retire(f"cold-{i}:v1")

        for _ in range(50):  # warm up both paths and the connection pool
            await direct()
            await sandboxed(ONE_GET, "bench:one")
        a: list[float] = []
        b: list[float] = []
        for _ in range(n):  # interleaved, so drift hits both alike
            a.append(await direct())
            b.append(await sandboxed(ONE_GET, "bench:one"))

        twenty_direct: list[float] = []
        twenty_pool: list[float] = []
        await sandboxed(TWENTY_GETS, "bench:twenty")
        for _ in range(max(20, n // 10)):
            t = time.perf_counter()
            for _ in range(20):
                await direct()
            twenty_direct.append((time.perf_counter() - t) * 1000)
            twenty_pool.append(await sandboxed(TWENTY_GETS, "bench:twenty"))

        big_url = url.replace("/item", "/big")
        big_direct: list[float] = []
        big_pool: list[float] = []
        await sandboxed(BIG_GET, "bench:big", big_url)
        for _ in range(max(20, n // 10)):
            big_direct.append(await direct(big_url))
            big_pool.append(await sandboxed(BIG_GET, "bench:big", big_url))

        pids = [pid for s in pool.stats().values() for pid in s["idle_pids"]]
        rss = [rss_mb(pid) for pid in pids]

        print(f"samples: {n} single-GET runs, {len(twenty_pool)} twenty-GET runs")
        print(f"(a) direct httpx GET          p50 {pct(a, 50):7.3f} ms   p90 {pct(a, 90):7.3f} ms")
        print(f"(b) pool.run, one ctx.http    p50 {pct(b, 50):7.3f} ms   p90 {pct(b, 90):7.3f} ms")
        print(
            f"    ratio (b)/(a)             p50 {pct(b, 50) / pct(a, 50):7.2f}x  "
            f"p90 {pct(b, 90) / pct(a, 90):7.2f}x   (target p50 <= 1.5x)"
        )
        print(f"    sandbox overhead          p50 {pct(b, 50) - pct(a, 50):7.3f} ms per run")
        print(f"(c) 20 direct GETs            p50 {pct(twenty_direct, 50):7.3f} ms")
        print(
            f"    pool.run, 20 ctx.http     p50 {pct(twenty_pool, 50):7.3f} ms   ratio "
            f"{pct(twenty_pool, 50) / pct(twenty_direct, 50):.2f}x"
        )
        print(
            f"(d) cold start (new worker)   median {statistics.median(cold):7.1f} ms   "
            f"max {max(cold):7.1f} ms"
        )
        print(
            f"    worker RSS                median {statistics.median(rss):7.1f} MB   "
            f"max {max(rss):7.1f} MB   (target <= 60 MB, {len(rss)} workers)"
        )
        print(f"(e) direct GET, 1 MiB body     p50 {pct(big_direct, 50):7.3f} ms")
        print(
            f"    pool.run, 1 MiB ctx.http  p50 {pct(big_pool, 50):7.3f} ms   overhead "
            f"{pct(big_pool, 50) - pct(big_direct, 50):.3f} ms"
        )
        print(f"isolation layers: {pool.isolation_layers()}")
    finally:
        await pool.close()
        await client.aclose()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="single-GET samples per path")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as uvicorn does)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(main(args.n))
    else:
        asyncio.run(main(args.n))
