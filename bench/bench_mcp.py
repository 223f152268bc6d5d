"""Benchmark: one tool call through MCP over streamable HTTP vs the same call through the REST API.

Run with ``make bench`` (or ``.venv/bin/python bench/bench_mcp.py``). A real ``bollard
serve`` (subprocess, the shipped integrations copied to a temporary folder) answers both;
the call is ``hotel__get_reservation {"id": 1}`` (SQLite, one row), sequentially:

- REST: ``POST /api/integrations/hotel/operations/get_reservation`` with one kept-alive
  ``httpx.AsyncClient``;
- MCP: ``tools/call`` with the official SDK's ``Client`` on one connection (protocol
  2026-07-28: one POST per call, the answer as SSE or JSON).

Prints the median (p50) and p90 of each in ms and the MCP/REST ratio of the medians, both
measured in this run (the machine may be loaded: the ratio holds better than absolutes).

Then the server side alone, in process (``BENCH_SERVER_ONLY=0`` skips it): the SDK client's
``tools/call`` request, captured once, and the REST request replayed straight into
``create_app``'s ASGI app (no sockets, no client), interleaved, p50 of each and the gap in
ms. On a shared machine this part moves far less with the load than the network part.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.types import Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.paths import SHIPPED  # noqa: E402
from tests.support.standin import BollardServer  # noqa: E402

N = int(os.environ.get("BENCH_N", "300"))
WARMUP = 20
PATH = "/api/integrations/hotel/operations/get_reservation"


def summary(name: str, samples: list[float]) -> float:
    ms = sorted(s * 1000 for s in samples)
    p50 = statistics.median(ms)
    p90 = ms[int(len(ms) * 0.9) - 1]
    print(f"  {name:<34} p50 {p50:7.2f} ms   p90 {p90:7.2f} ms   (n={len(ms)})")
    return p50


async def rest(url: str, token: str) -> list[float]:
    samples = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        for i in range(WARMUP + N):
            t0 = time.perf_counter()
            r = await http.post(PATH, json={"params": {"id": 1}})
            elapsed = time.perf_counter() - t0
            assert r.status_code == 200 and r.json()["success"], r.text
            if i >= WARMUP:
                samples.append(elapsed)
    return samples


async def mcp(url: str, token: str) -> list[float]:
    samples = []
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(60))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        await client.list_tools()
        for i in range(WARMUP + N):
            t0 = time.perf_counter()
            result = await client.call_tool("hotel__get_reservation", {"id": 1})
            elapsed = time.perf_counter() - t0
            assert not result.is_error and result.structured_content["success"], result.content
            if i >= WARMUP:
                samples.append(elapsed)
    return samples


async def _replay(app: object, scope: Scope, body: bytes) -> float:
    """One request into ``app`` (an ASGI app) as uvicorn would deliver it; seconds taken."""
    done = asyncio.Event()
    sent = False
    status: list[int] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # the client hangs up once the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    t0 = time.perf_counter()
    await app(dict(scope), receive, send)  # type: ignore[operator]
    elapsed = time.perf_counter() - t0
    assert status == [200], status
    return elapsed


async def server_only(root: Path) -> None:
    from bollard.platform.api.app import create_app
    from bollard.platform.settings import Settings

    app = create_app(Settings(integrations_dir=root / "integrations", data_dir=root / "data-inproc"))
    async with app.router.lifespan_context(app):
        token = await app.state.runtime.ensure_admin_token()
        captured: list[tuple[Scope, bytes]] = []

        async def capture(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/mcp":
                message = await receive()  # the SDK sends its small body in one message
                if b'"tools/call"' in message.get("body", b""):
                    captured.append((dict(scope), message["body"]))

                replayed = False

                async def again() -> Message:  # the body once more, then the client's own
                    nonlocal replayed
                    if replayed:
                        return await receive()
                    replayed = True
                    return message

                return await app(scope, again, send)
            return await app(scope, receive, send)

        headers = {"Authorization": f"Bearer {token}"}
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=capture), headers=headers)
        async with (
            http,
            Client(streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http)) as client,
        ):
            await client.call_tool("hotel__get_reservation", {"id": 1})
        mcp_scope, mcp_body = captured[0]
        rest_body = b'{"params": {"id": 1}}'
        rest_headers = [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {token}".encode())]
        rest_headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(rest_body))]
        rest_scope = dict(mcp_scope, path=PATH, raw_path=PATH.encode(), headers=rest_headers)
        mcp_s: list[float] = []
        rest_s: list[float] = []
        for i in range(WARMUP + 3 * N):  # interleaved one by one
            m, r = await _replay(app, mcp_scope, mcp_body), await _replay(app, rest_scope, rest_body)
            if i >= WARMUP:
                mcp_s.append(m)
                rest_s.append(r)
        print(f"server side only, in process (ASGI app, no sockets or client), {len(mcp_s)} calls each")
        rest_p50 = summary("REST  POST /api/…/operations/…", rest_s)
        mcp_p50 = summary("MCP   tools/call over /mcp", mcp_s)
        print(f"  MCP / REST (p50): {mcp_p50 / rest_p50:.2f}x, MCP - REST: {mcp_p50 - rest_p50:.3f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(SHIPPED, root / "integrations")
        server = BollardServer(root / "integrations", root / "data", {})
        try:
            token = (root / "data" / "admin.token").read_text().strip()
            print(f"one tool call (hotel__get_reservation, SQLite), sequential, {N} calls each")
            # interleaved halves, so a change of machine load hits both paths alike
            rest_s, mcp_s = [], []
            for _ in range(2):
                rest_s += asyncio.run(rest(server.url, token))
                mcp_s += asyncio.run(mcp(server.url, token))
            rest_p50 = summary("REST  POST /api/…/operations/…", rest_s)
            mcp_p50 = summary("MCP   tools/call over /mcp", mcp_s)
            print(f"  MCP / REST (p50): {mcp_p50 / rest_p50:.2f}x")
        finally:
            server.stop()
        if os.environ.get("BENCH_SERVER_ONLY", "1") != "0":
            asyncio.run(server_only(root))


if __name__ == "__main__":
    main()
