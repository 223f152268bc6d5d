"""What the benchmarks share: the stand-in upstream in its own process, the direct-GET
baseline, timing and the report lines.

Imported as ``bench._common`` once the repository root is on ``sys.path`` (each
benchmark puts it there first).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

UPSTREAM = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def small(_):
    return JSONResponse({"ok": True, "items": list(range(10))})

uvicorn.run(Starlette(routes=[Route("/small", small)]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""


class Upstream:
    """The stand-in API (``GET /small``, a small JSON) in its own process, so it shares
    no interpreter with the clients; ``with Upstream() as standin: standin.url``."""

    def __init__(self) -> None:
        from tests.support.standin import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/small", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the upstream did not start")

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bench_connector(url: str) -> str:
    """The ``connector.py`` of :func:`bench_manifest`."""
    return f'''
def execute(ctx):
    if ctx.operation == "one":
        return ctx.http.get("{url}/small").body
    out = []
    for i in range(20):
        out.append(ctx.http.get("{url}/small").status)
    return out
'''


def bench_manifest(url: str) -> dict[str, Any]:
    """The manifest of the bench connectors: ``one`` GET of ``url``'s ``/small`` and
    ``twenty`` sequential ones, no credentials."""
    return {
        "title": "Bench",
        "authMethod": "none",
        "allowedHosts": [url],
        "operations": [{"name": "one"}, {"name": "twenty"}],
    }


def pct(values: list[float], p: float) -> float:
    """The ``p`` quantile (0–1) of ``values``, nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def line(
    label: str, samples: list[float], base: float | None = None, *, width: int = 38, digits: int = 7
) -> str:
    """One report line: ``label``, p50 and p90 in ms (samples in s), and the p50's ratio
    to ``base`` (s) when given."""
    p50 = statistics.median(samples)
    ratio = f"  ratio {p50 / base:5.2f}x" if base else ""
    p90 = pct(samples, 0.9)
    return f"{label:<{width}} p50 {p50 * 1000:{digits}.3f} ms  p90 {p90 * 1000:{digits}.3f} ms{ratio}"


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    """``n`` sequential awaits of ``fn()``; each one's duration (s)."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def direct_baseline(url: str, n: int) -> tuple[list[float], list[float]]:
    """The baseline a connector's ``ctx.http.get`` is compared with: ``n`` direct
    ``httpx`` GETs of ``url`` (after 50 to warm up), and ``max(20, n // 10)`` runs of 20
    sequential GETs; the durations (s) of each."""
    async with httpx.AsyncClient() as direct:
        await timed(lambda: direct.get(url), 50)
        one = await timed(lambda: direct.get(url), n)

        async def twenty() -> None:
            for _ in range(20):
                await direct.get(url)

        return one, await timed(twenty, max(20, n // 10))


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` (KiB, /proc); 0 when it says none or the process
    has ended (a worker retired between listing and reading)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    for row in status.splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0
