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


if __name__ == "__main__":
    main()
