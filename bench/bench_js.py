"""Benchmark: the TypeScript/JavaScript runtime (Deno workers) vs the Python runtime vs a
direct GET, in one run.

Run with ``make bench`` (or ``.venv/bin/python bench/bench_js.py``). A stand-in HTTP server
in its own process; the execution service in-process (``Runtime`` +
``ExecutionService.invoke``, every sandbox layer in force). Reports medians and ratios to
the direct path measured in the same run:

- one ``ctx.http.get`` through a ``connector.ts`` vs a ``connector.py`` vs a direct
  ``httpx`` GET;
- 20 sequential ``ctx.http.get`` in one execution vs 20 direct GETs;
- worker RSS (from /proc) and cold start (a new worker: start, isolate, load, one
  execution) of a Deno worker and of a Python worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import Upstream, bench_connector, bench_manifest, direct_baseline, line, rss_kib, timed  # noqa: E402
from tests.support.api import local_settings  # noqa: E402

N = int(os.environ.get("BENCH_N", "300"))
COLD = int(os.environ.get("BENCH_COLD", "8"))


def ts_connector(url: str) -> str:
    return f"""
const connector = {{
  execute(ctx: any) {{
    if (ctx.operation === 'one') return ctx.http.get('{url}/small').body;
    const out: number[] = [];
    for (let i = 0; i < 20; i++) out.push(ctx.http.get('{url}/small').status);
    return out;
  }},
}};
"""


def report(label: str, samples: list[float], base: float | None = None) -> str:
    return line(label, samples, base, width=40, digits=8)


async def cold_starts(url: str) -> dict[str, list[float]]:
    """Wall time of the first execution on a new worker (a new key each time)."""
    from bollard.sandbox.job import Job
    from bollard.sandbox.pool import SandboxPool
    from bollard.sandbox.protocol import HttpRequest, HttpResponse

    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, "OK", {"content-type": "application/json"}, b"{}", request.url)

    out: dict[str, list[float]] = {"js": [], "python": []}
    pool = SandboxPool(workers_per_integration=1, max_executions_per_worker=1)
    try:
        for i in range(COLD):
            for kind, filename, source in (
                ("js", "connector.ts", ts_connector(url)),
                ("python", "connector.py", bench_connector(url)),
            ):
                started = time.perf_counter()
                await pool.run(
                    Job(
                        key=f"cold{kind}{i}:v",
                        source=source,
                        entrypoint="execute",
                        operation="one",
                        params={},
                        secrets={},
                        http_handler=handler,
                        filename=filename,
                    )
                )
                out[kind].append(time.perf_counter() - started)
    finally:
        await pool.close()
    return out


async def main() -> None:
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime

    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for slug, name, source in (
            ("bench-ts", "connector.ts", ts_connector(standin.url)),
            ("bench-py", "connector.py", bench_connector(standin.url)),
        ):
            folder = root / "integrations" / slug
            folder.mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps(bench_manifest(standin.url)))
            (folder / name).write_text(source)

        direct_one, direct20 = await direct_baseline(standin.url + "/small", N)
        settings = local_settings(root / "integrations", root / "lib")
        rt = Runtime(settings)
        await rt.start()
        results: dict[str, list[float]] = {}
        rss: dict[str, list[int]] = {}
        try:

            async def invoke(slug: str, op: str) -> None:
                out = await rt.execution.invoke(Invocation(slug, op))
                assert out.status == 200, out.body
                if op == "twenty":
                    assert out.body["data"] == [200] * 20, out.body

            # Interleaved, so load on the shared machine hits every path alike.
            slugs = ("bench-ts", "bench-py")
            for slug in slugs:
                await timed(lambda slug=slug: invoke(slug, "one"), 50)
            for key in [f"{s}/{op}" for s in slugs for op in ("one", "twenty")]:
                results[key] = []
            for i in range(N):
                for slug in slugs:
                    ops = ("one", "twenty") if i % 10 == 0 else ("one",)
                    for op in ops:
                        started = time.perf_counter()
                        await invoke(slug, op)
                        results[f"{slug}/{op}"].append(time.perf_counter() - started)
            for slug in slugs:
                pids = [
                    pid
                    for key, s in rt.pool.stats().items()
                    if key.startswith(slug)
                    for pid in s["idle_pids"]
                ]
                rss[slug] = [rss_kib(pid) for pid in pids]
            layers = rt.pool.js_isolation_layers() or {}
        finally:
            await rt.stop()
        cold = await cold_starts(standin.url)

    base, base20 = statistics.median(direct_one), statistics.median(direct20)
    print(
        f"bench_js: N={N} on {os.cpu_count()} cores; Deno worker layers: "
        + ", ".join(k for k, v in layers.items() if v is True or (isinstance(v, str) and k != "runtime"))
    )
    print(report("direct httpx GET", direct_one))
    print(report("connector.py: one ctx.http.get", results["bench-py/one"], base))
    print(report("connector.ts: one ctx.http.get", results["bench-ts/one"], base))
    print(report("direct: 20 sequential GETs", direct20))
    print(report("connector.py: 20 ctx.http.get", results["bench-py/twenty"], base20))
    print(report("connector.ts: 20 ctx.http.get", results["bench-ts/twenty"], base20))
    py_cold = statistics.median(cold["python"])
    print(report("cold start, Python worker (first call)", cold["python"]))
    print(report("cold start, Deno worker (first call)", cold["js"], py_cold))
    for slug, label in (("bench-py", "Python"), ("bench-ts", "Deno")):
        sizes = " ".join(f"{kib / 1024:.1f} MB" for kib in rss.get(slug, []))
        print(f"{label + ' worker RSS':<40} {sizes}")


if __name__ == "__main__":
    asyncio.run(main())
