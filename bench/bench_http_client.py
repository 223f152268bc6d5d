"""Which HTTP client should the host use for ``ctx.http``? (performance issue, Deliver 2)

Run: ``.venv/bin/python bench/bench_http_client.py [--n 200] [--uvloop]``

A loopback upstream runs in its own process (``http.server``, HTTP/1.1 keep-alive, one
small JSON document). In one run, interleaved (the order rotates every sample), each
client does one GET, then 20 sequential GETs, on a warm keep-alive connection:

- ``httpx``: ``httpx.AsyncClient`` (the host's client before this benchmark);
- ``httpcore``: a raw ``httpcore.AsyncConnectionPool`` (its default anyio backend);
- ``httpcore+pinned``: httpcore on Bollard's pinned asyncio backend
  (:func:`bollard.platform.egress.pinned.make_pool`), the request addressed by pinned host;
- ``egress.send``: Bollard's whole sender (policy check, pinned pool, budgets, decoding);
- ``aiohttp``: ``aiohttp.ClientSession`` with a pinned resolver (only when installed);
- ``http.client``: the stdlib, blocking, for reference.

Prints medians (ms) and each client's ratio to httpx. The machine may be loaded: read
the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from typing import Any

import httpcore
import httpx

from bollard.platform.egress import EgressPolicy, make_client, send
from bollard.platform.egress.pinned import make_pool, pinned_host
from bollard.sandbox.protocol import HttpRequest

SERVER = textwrap.dedent(
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    BODY = b'{"id": 42, "name": "widget", "tags": ["a", "b"], "price": 9.5}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        def log_message(self, *args):
            pass
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)

Get = Callable[[], Awaitable[Any]]


async def clients(port: int) -> tuple[dict[str, Get], Callable[[], Awaitable[None]]]:
    """Each client's one-GET coroutine factory, and a closer for all of them."""
    url = f"http://127.0.0.1:{port}/item"
    closers: list[Callable[[], Awaitable[Any]]] = []
    out: dict[str, Get] = {}

    hx = httpx.AsyncClient(trust_env=False)
    closers.append(hx.aclose)

    async def get_httpx() -> Any:
        return (await hx.get(url)).content

    out["httpx"] = get_httpx

    pool = httpcore.AsyncConnectionPool()
    closers.append(pool.aclose)

    async def get_httpcore() -> Any:
        return (await pool.request("GET", url, headers=[(b"Host", f"127.0.0.1:{port}".encode())])).content

    out["httpcore"] = get_httpcore

    pinned = make_pool(
        httpx.create_ssl_context(), max_connections=10, max_keepalive_connections=10, keepalive_expiry_s=30
    )
    closers.append(pinned.aclose)
    pinned_url = f"http://{pinned_host(IPv4Address('127.0.0.1'), '127.0.0.1')}:{port}/item"

    async def get_pinned() -> Any:
        return (
            await pinned.request("GET", pinned_url, headers=[(b"Host", f"127.0.0.1:{port}".encode())])
        ).content

    out["httpcore+pinned"] = get_pinned

    egress = make_client()
    closers.append(egress.aclose)
    policy = EgressPolicy([f"http://127.0.0.1:{port}"], allow_private=True)

    async def get_egress() -> Any:
        return (
            await send(egress, policy, HttpRequest("GET", url), max_response_bytes=10 << 20, timeout_s=10)
        ).body

    out["egress.send"] = get_egress

    try:
        import aiohttp
        from aiohttp.abc import AbstractResolver
    except ImportError:
        print("aiohttp is not installed: not measured (pip install aiohttp)")
    else:

        class PinnedResolver(AbstractResolver):
            """Answers only with the address the policy checked (here: loopback)."""

            async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
                return [
                    {
                        "hostname": host,
                        "host": "127.0.0.1",
                        "port": port,
                        "family": socket.AF_INET,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                ]

            async def close(self) -> None:
                pass

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=PinnedResolver(), use_dns_cache=False),
            auto_decompress=False,
        )
        closers.append(session.close)
        aio_url = f"http://pinned.invalid:{port}/item"

        async def get_aiohttp() -> Any:
            async with session.get(aio_url, headers={"Host": f"127.0.0.1:{port}"}) as response:
                return await response.read()

        out["aiohttp"] = get_aiohttp

    conn = http.client.HTTPConnection("127.0.0.1", port)

    async def get_stdlib() -> Any:
        conn.request("GET", "/item")
        return conn.getresponse().read()

    out["http.client"] = get_stdlib
    closers.append(lambda: asyncio.sleep(0, conn.close()))

    async def close() -> None:
        for closer in closers:
            await closer()

    return out, close


async def main(n: int) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        gets, close = await clients(port)
        names = list(gets)
        one: dict[str, list[float]] = {k: [] for k in names}
        twenty: dict[str, list[float]] = {k: [] for k in names}
        for get in gets.values():  # warm up: connections open, code paths imported
            for _ in range(20):
                await get()
        for i in range(n):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                get = gets[name]
                t0 = time.perf_counter()
                await get()
                t1 = time.perf_counter()
                for _ in range(20):
                    await get()
                t2 = time.perf_counter()
                one[name].append((t1 - t0) * 1000)
                twenty[name].append((t2 - t1) * 1000)
        await close()
    finally:
        server.terminate()
        server.wait()
    base1, base20 = statistics.median(one["httpx"]), statistics.median(twenty["httpx"])
    print(f"{n} samples, interleaved; medians; ratio to httpx.AsyncClient")
    print(f"{'client':<18}{'1 GET ms':>10}{'ratio':>8}{'20 GETs ms':>13}{'ratio':>8}")
    for name in names:
        m1, m20 = statistics.median(one[name]), statistics.median(twenty[name])
        print(f"{name:<18}{m1:>10.3f}{m1 / base1:>7.2f}x{m20:>13.2f}{m20 / base20:>7.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per client")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as bollard serve does)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(args.n))
