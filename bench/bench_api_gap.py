"""The HTTP API's cost over the library for one call, the two measured interleaved.

Run with ``.venv/bin/python bench/bench_api_gap.py [--n 600] [--rounds 10] [--op one|nop]``.
Unlike bench_table (library first, then a fresh server), the library runtime (in this
process) and a real ``bollard serve`` (a subprocess, reached by bench_table's minimal
keep-alive client) are both up the whole time and measured in alternating rounds, so a
shared machine's load falls on both alike. Prints each path's p50/p90, the gap, and the
server's CPU per call against the library's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_api import Upstream  # noqa: E402
from bench_table import ENV, Light, agent_token, cpu_s, pct, write_integrations  # noqa: E402

from tests.support.standin import BollardServer  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--op", default="one", choices=["one", "nop"])
    args = ap.parse_args()
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    slug, op = ("bench", "one") if args.op == "one" else ("nop1", "nop")
    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_integrations(root, standin.url)
        rt = Runtime(
            Settings(
                integrations_dir=root / "integrations",
                data_dir=root / "lib",
                secret_key="bench",
                reload=False,
                allow_private_egress=True,
            )
        )
        await rt.start()
        token = agent_token(root / "srv")
        server = BollardServer(root / "integrations", root / "srv", ENV)
        light = Light(server.port, token)
        path = f"/api/integrations/{slug}/operations/{op}"

        async def library() -> None:
            out = await rt.execution.invoke(Invocation(slug, op))
            assert out.status == 200, out.body

        async def api() -> None:
            status, body = await light.post(path)
            assert status == 200, body

        lib: list[float] = []
        http: list[float] = []
        lib_cpu = srv_cpu = 0.0
        try:
            for _ in range(100):
                await library()
                await api()
            per = max(1, args.n // args.rounds)
            for _ in range(args.rounds):
                c0 = time.process_time()
                for _ in range(per):
                    t = time.perf_counter()
                    await library()
                    lib.append(time.perf_counter() - t)
                lib_cpu += time.process_time() - c0
                c0 = cpu_s(server.proc.pid)
                for _ in range(per):
                    t = time.perf_counter()
                    await api()
                    http.append(time.perf_counter() - t)
                srv_cpu += cpu_s(server.proc.pid) - c0
        finally:
            await light.close()
            server.stop()
            await rt.stop()
    a, b = statistics.median(lib), statistics.median(http)
    print(f"op={args.op} n={len(lib)} interleaved in {args.rounds} rounds")
    print(
        f"library  p50 {a * 1000:6.3f} ms  p90 {pct(lib, 0.9) * 1000:6.3f} ms  "
        f"cpu/call {lib_cpu / len(lib) * 1000:.3f} ms"
    )
    print(
        f"HTTP API p50 {b * 1000:6.3f} ms  p90 {pct(http, 0.9) * 1000:6.3f} ms  "
        f"server cpu/call {srv_cpu / len(http) * 1000:.3f} ms"
    )
    print(f"gap      p50 {(b - a) * 1000:+6.3f} ms")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
