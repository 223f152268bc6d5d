"""The FastAPI app's own cost per operation call: the execution service stubbed out.

Run with ``.venv/bin/python bench/profile_app_stubbed.py [--n 5000] [--profile]``. The app
(``create_app``) is called directly with an ASGI scope (``profile_api.asgi_caller``: no
socket, no HTTP parsing) for ``POST /api/integrations/nop1/operations/nop`` with an agent
token, while ``ExecutionService.invoke`` returns a fixed 200 envelope at once; so the p50
is routing, middleware, authentication, body parsing and the response's encoding only.
``--profile`` prints cProfile's top frames by own time over another ``--n`` calls.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from profile_api import asgi_caller  # noqa: E402

BODY = {
    "success": True,
    "integration": "nop1",
    "operation": "nop",
    "version": 1,
    "data": {"ok": True, "items": list(range(10))},
    "durationMs": 0.1,
}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    from bollard.platform import tokens
    from bollard.platform.api.app import create_app
    from bollard.platform.invocation import Invocation, Outcome
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    tmp = Path(tempfile.mkdtemp())
    (tmp / "integrations").mkdir()
    rt = Runtime(
        Settings(integrations_dir=tmp / "integrations", data_dir=tmp / "data", secret_key="x", reload=False)
    )
    await rt.start()
    try:

        async def stub(_inv: Invocation) -> Outcome:
            return Outcome(200, BODY)

        rt.execution.invoke = stub  # type: ignore[method-assign]
        app = create_app(runtime=rt)
        token = await tokens.create_token(rt.db, "agent")
        call = asgi_caller(app, "/api/integrations/nop1/operations/nop", token)
        for _ in range(500):
            await call()
        samples = []
        for _ in range(args.n):
            t = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - t)
        print(f"app with the execution stubbed: p50 {statistics.median(samples) * 1000:.3f} ms (n={args.n})")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.n):
                await call()
            prof.disable()
            stats = pstats.Stats(prof).strip_dirs()
            total = stats.total_tt  # type: ignore[attr-defined]
            print(f"profiled {total:.2f} s for {args.n} calls; top frames by own time:")
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:25]  # type: ignore[attr-defined]
            for (file, line, name), (_cc, nc, tt, ct, _callers) in rows:
                print(
                    f"{100 * tt / total:5.1f}% own {100 * ct / total:5.1f}% cum {nc:7d}  "
                    f"{file}:{line}({name})"
                )
    finally:
        await rt.stop()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
