"""What ``ctx.files`` costs a call (DESIGN §3): storing a file vs returning the same bytes
as the result, and ``ctx.files.download`` vs ``ctx.http.get`` of the same URL, for a
``connector.py`` and a ``connector.ts``, through ``ExecutionService.invoke`` in process.

Run with ``.venv/bin/python bench/bench_files.py`` (``BENCH_N`` calls per case, default
200; ``BENCH_KIB`` the payload, default 64). A store writes the bytes to a temporary
name, fsyncs and renames it (off the event loop) and inserts one row into the state
database (SQLite here), so the ratio is mostly fsync plus one insert. Cases are
interleaved, so load on the shared machine hits each alike; ratios hold better than the
absolute figures.
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
from bench._common import Upstream, line  # noqa: E402

N = int(os.environ.get("BENCH_N", "200"))
KIB = int(os.environ.get("BENCH_KIB", "64"))


def py_connector(url: str) -> str:
    return f'''
def execute(ctx):
    data = "x" * {KIB * 1024}
    if ctx.operation == "result":
        return len(data)
    if ctx.operation == "store":
        return ctx.files.store(data, file_name="bench.txt", content_type="text/plain")["size"]
    if ctx.operation == "get":
        return ctx.http.get("{url}/small").status
    return ctx.files.download("{url}/small", file_name="small.json")["size"]
'''


def ts_connector(url: str) -> str:
    return f"""
const connector = {{
  execute(ctx) {{
    const data = "x".repeat({KIB * 1024});
    if (ctx.operation === "result") return data.length;
    if (ctx.operation === "store") {{
      return ctx.files.store(data, {{ fileName: "bench.txt", contentType: "text/plain" }}).size;
    }}
    if (ctx.operation === "get") return ctx.http.get("{url}/small").status;
    return ctx.files.download("{url}/small", {{ fileName: "small.json" }}).size;
  }},
}};
"""


OPS = ("result", "store", "get", "download")


def report(label: str, samples: list[float], base: float | None = None) -> str:
    return line(label, samples, base, width=44, digits=8)


async def main() -> None:
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = {
            "title": "Bench",
            "authMethod": "none",
            "allowedHosts": [standin.url],
            "operations": [{"name": op} for op in OPS],
        }
        for slug, name, source in (
            ("files-py", "connector.py", py_connector(standin.url)),
            ("files-ts", "connector.ts", ts_connector(standin.url)),
        ):
            folder = root / "integrations" / slug
            folder.mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps(manifest))
            (folder / name).write_text(source)
        settings = Settings(
            integrations_dir=root / "integrations",
            data_dir=root / "data",
            secret_key="bench",
            reload=False,
            allow_private_egress=True,
            max_files_per_execution=10,
        )
        rt = Runtime(settings)
        await rt.start()
        samples: dict[str, list[float]] = {f"{s}/{op}": [] for s in ("files-py", "files-ts") for op in OPS}
        try:

            async def invoke(slug: str, op: str) -> float:
                started = time.perf_counter()
                out = await rt.execution.invoke(Invocation(slug, op))
                elapsed = time.perf_counter() - started
                assert out.status == 200, out.body
                return elapsed

            for key in samples:  # warm the workers and the connections
                for _ in range(10):
                    await invoke(*key.split("/"))
            for _ in range(N):
                for key, values in samples.items():
                    values.append(await invoke(*key.split("/")))
            stored = len(os.listdir(settings.data_dir / "files"))
        finally:
            await rt.stop()

    print(f"bench_files: N={N}, {KIB} KiB payload, {os.cpu_count()} cores, {stored} files written")
    for slug, label in (("files-py", "connector.py"), ("files-ts", "connector.ts")):
        result, get = statistics.median(samples[f"{slug}/result"]), statistics.median(samples[f"{slug}/get"])
        print(report(f"{label}: return {KIB} KiB built in the code", samples[f"{slug}/result"]))
        print(report(f"{label}: ctx.files.store of it", samples[f"{slug}/store"], result))
        print(report(f"{label}: ctx.http.get /small", samples[f"{slug}/get"]))
        print(report(f"{label}: ctx.files.download /small", samples[f"{slug}/download"], get))


if __name__ == "__main__":
    asyncio.run(main())
