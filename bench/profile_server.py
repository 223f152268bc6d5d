"""Profile a real ``bollard serve`` (its main thread, under cProfile) under sequential calls.

Run with ``.venv/bin/python bench/profile_server.py [--n 2000] [--op one|nop|hotel]
[--sort tottime|cumulative] [--out FILE]``. Starts the loopback upstream and
``python -m cProfile -o FILE -m bollard.platform.cli serve`` on bench_table's integrations,
makes ``--n`` sequential calls with bench_table's minimal keep-alive client (after 100 to
warm up), stops the server with SIGINT (uvicorn shuts down, cProfile writes its file)
and prints the top frames with their share of the profiled time. cProfile's own overhead
inflates small Python functions: read the shares, not the absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_api import Upstream  # noqa: E402
from bench_table import ENV, Light, agent_token, write_integrations  # noqa: E402

from tests.support.standin import free_port  # noqa: E402

PATHS = {
    "one": "bench/operations/one",
    "nop": "nop1/operations/nop",
    "hotel": "hotel/operations/list_reservations",
}


def top(out: Path, sort: str, limit: int) -> None:
    stats = pstats.Stats(str(out))
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats(sort)
    key = 2 if sort == "tottime" else 3
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][key], reverse=True)[:limit]  # type: ignore[attr-defined]
    print(f"profiled {total:.2f} s in the server's main thread; top {limit} by {sort}:")
    print(f"{'own %':>6} {'cum %':>6} {'calls':>8}  function")
    for (file, line, name), (_cc, nc, tt, ct, _callers) in rows:
        print(f"{100 * tt / total:6.1f} {100 * ct / total:6.1f} {nc:8d}  {file}:{line}({name})")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--op", default="one", choices=sorted(PATHS))
    ap.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    ap.add_argument("--limit", type=int, default=35)
    ap.add_argument("--out", default=None)
    ap.add_argument("--wrk", type=int, default=0, metavar="S", help="wrk -t1 -c16 for S seconds instead")
    args = ap.parse_args()
    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_integrations(root, standin.url)
        data = root / "srv"
        token = agent_token(data)
        port = free_port()
        out = Path(args.out) if args.out else root / "serve.prof"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "bollard.platform.cli", "serve"]
        cmd += ["--port", str(port), "--integrations", str(root / "integrations"), "--data-dir", str(data)]
        cmd += ["--workers", "1"]
        with (root / "serve.log").open("w") as log:
            proc = subprocess.Popen(cmd, env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((root / "serve.log").read_text()[-2000:]) from None
                await asyncio.sleep(0.1)
        light = Light(port, token)
        path = f"/api/integrations/{PATHS[args.op]}"
        try:
            for _ in range(100):
                status, body = await light.post(path)
                assert status == 200, body
            if args.wrk:
                from bench_table import wrk

                rate, _bad = wrk(f"http://127.0.0.1:{port}{path}", token, args.wrk, root)
                label = f"wrk -t1 -c16 for {args.wrk} s: {rate:,.0f} executions/s under the profiler"
            else:
                t = time.perf_counter()
                for _ in range(args.n):
                    await light.post(path)
                per = (time.perf_counter() - t) / args.n
                label = f"{args.n} sequential calls, {per * 1000:.3f} ms each under the profiler"
        finally:
            await light.close()
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        print(f"op={args.op}: {label}")
        top(out, args.sort, args.limit)


if __name__ == "__main__":
    asyncio.run(main())
