"""Profile the HTTP API's overhead over the library for one operation call, in one process.

Run with ``.venv/bin/python bench/profile_api.py [--n 2000] [--op one|nop] [--profile]``.
The runtime is started once; then, interleaved in rounds so a loaded machine hurts each
path alike:

- ``library``: ``runtime.execution.invoke`` (what bench_table's library row measures);
- ``asgi``: the FastAPI app called directly with an ASGI scope (no socket, no HTTP
  parsing): the app's own cost over the library (routing, middleware, dependencies,
  body parsing, token lookup, the envelope's encoding);
- ``http``: the same app served by uvicorn (httptools, this loop) to a minimal keep-alive
  client in this process: adds uvicorn's HTTP parsing and the loopback socket.

``--profile`` then runs ``--n`` calls of each path under cProfile and prints the top frames
by cumulative and own time (the shares docs/perf-profile.md quotes).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_api import Upstream, connector, manifest  # noqa: E402
from bench_table import NOP, Light  # noqa: E402


def asgi_caller(app: Any, path: str, token: str) -> Any:
    body = b'{"params": {}}'
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def call() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        assert status == 200, status
        return status

    return call


def report(prof: cProfile.Profile, title: str, limit: int = 30) -> None:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    print(f"===== {title}: cumulative")
    print(out.getvalue()[-12000:])
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(limit)
    print(f"===== {title}: own time")
    print(out.getvalue()[-12000:])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--op", default="one", choices=["one", "nop"])
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import uvicorn

    from bollard.platform import tokens
    from bollard.platform.api.app import create_app
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        integ = root / "integrations"
        (integ / "bench").mkdir(parents=True)
        (integ / "bench" / "config.json").write_text(json.dumps(manifest(standin.url)))
        (integ / "bench" / "connector.py").write_text(connector(standin.url))
        (integ / "nop1").mkdir()
        (integ / "nop1" / "config.json").write_text(
            json.dumps({"title": "Nop", "authMethod": "none", "operations": [{"name": "nop"}]})
        )
        (integ / "nop1" / "connector.py").write_text(NOP)
        slug, op = ("bench", "one") if args.op == "one" else ("nop1", "nop")
        path = f"/api/integrations/{slug}/operations/{op}"

        rt = Runtime(
            Settings(
                integrations_dir=integ,
                data_dir=root / "data",
                secret_key="bench",
                reload=False,
                allow_private_egress=True,
            )
        )
        await rt.start()
        app = create_app(runtime=rt)
        token = await tokens.create_token(rt.db, "agent")
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        light = Light(port, token)

        async def library() -> None:
            out = await rt.execution.invoke(Invocation(slug, op))
            assert out.status == 200, out.body

        async def http() -> None:
            status, body = await light.post(path)
            assert status == 200, body

        paths = {"library": library, "asgi": asgi_caller(app, path, token), "http": http}
        samples: dict[str, list[float]] = {k: [] for k in paths}
        try:
            for fn in paths.values():  # warm up
                for _ in range(50):
                    await fn()
            per = max(1, args.n // args.rounds)
            for _ in range(args.rounds):
                for name, fn in paths.items():
                    for _ in range(per):
                        t = time.perf_counter()
                        await fn()
                        samples[name].append(time.perf_counter() - t)
            lib = statistics.median(samples["library"])
            for name, s in samples.items():
                med = statistics.median(s)
                print(
                    f"{name:<8} p50 {med * 1000:6.3f} ms   "
                    f"over library {(med - lib) * 1000:+6.3f} ms  (n={len(s)})"
                )
            if args.profile:
                for name, fn in paths.items():
                    prof = cProfile.Profile()
                    prof.enable()
                    for _ in range(args.n):
                        await fn()
                    prof.disable()
                    report(prof, f"{name} x{args.n}")
        finally:
            await light.close()
            server.should_exit = True
            await serving
            await rt.stop()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
