"""Benchmark: what metrics and spans cost per call (platform/metrics.py, platform/tracing.py).

Run with ``make bench`` (or ``.venv/bin/python bench/bench_observability.py``). In one
process, interleaved in rounds so the machine's load hits every variant alike:

- ``off``: no metrics observer (spans are off too: no provider is in use);
- ``metrics``: the default (counters and a histogram per call; no provider, so each span
  is a shared null context, as when no OTLP endpoint is set);
- ``metrics + spans``: an SDK provider records every span (batching to an exporter that
  drops them), as when an OTLP endpoint is set.

for two calls: a mock answer (the cheapest call, where the overhead shows most) and a
REST call through the sandbox making one ``ctx.http.get`` to a stand-in. Also the time of
one ``/metrics`` render. Reports medians and the ratio to ``off``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench._common import Upstream  # noqa: E402  # the stand-in API in its own process

N = int(os.environ.get("BENCH_N", "300"))
ROUNDS = 10


class DropExporter:
    """A span exporter that keeps nothing (the SDK's work without a collector)."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


async def main() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from bollard.platform import metrics, tracing
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    with Upstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "integrations" / "bench"
        folder.mkdir(parents=True)
        manifest = {
            "title": "Bench",
            "authMethod": "none",
            "allowedHosts": [upstream.url],
            "operations": [{"name": "mocked", "mock": {"ok": True}}, {"name": "one"}],
        }
        (folder / "config.json").write_text(json.dumps(manifest))
        (folder / "connector.py").write_text(
            f'def execute(ctx):\n    return ctx.http.get("{upstream.url}/small").status\n'
        )
        settings = Settings(
            integrations_dir=root / "integrations",
            data_dir=root / "data",
            secret_key="bench",
            reload=False,
            allow_private_egress=True,
        )
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(DropExporter()))  # type: ignore[arg-type]
        async with Runtime(settings) as rt:
            observer = rt.metrics.on_execution

            def variant(name: str) -> None:
                rt.execution_log.observers[:] = [] if name == "off" else [observer]
                tracing.use_provider(provider if name == "metrics + spans" else None)

            calls = {
                "mock": Invocation("bench", "mocked", use_mock=True),
                "REST via sandbox": Invocation("bench", "one"),
            }
            variants = ("off", "metrics", "metrics + spans")
            samples: dict[tuple[str, str], list[float]] = {(c, v): [] for c in calls for v in variants}
            for inv in calls.values():  # warm-up: workers started, caches filled
                for _ in range(30):
                    assert (await rt.execution.invoke(inv)).status == 200
            per_round = max(1, N // ROUNDS)
            for _ in range(ROUNDS):
                for call_name, inv in calls.items():
                    for v in variants:
                        variant(v)
                        for _ in range(per_round):
                            t = time.perf_counter()
                            out = await rt.execution.invoke(inv)
                            samples[(call_name, v)].append(time.perf_counter() - t)
                            assert out.status == 200, out.body
                await rt.execution_log.flush()
            variant("metrics")
            refreshes, renders = [], []
            for _ in range(50):
                t = time.perf_counter()
                await metrics.refresh(rt)
                refreshes.append(time.perf_counter() - t)
                t = time.perf_counter()
                body = rt.metrics.render()
                renders.append(time.perf_counter() - t)
        provider.shutdown()

    print(f"observability cost per call (in process, {per_round * ROUNDS} calls per row, medians)")
    for call_name in calls:
        base = statistics.median(samples[(call_name, "off")])
        for v in variants:
            p50 = statistics.median(samples[(call_name, v)])
            print(
                f"  {call_name:<17} {v:<16} p50 {p50 * 1e6:8.1f} µs  "
                f"+{(p50 - base) * 1e6:6.1f} µs  ratio {p50 / base:5.3f}x"
            )
    print(
        f"  /metrics: approvals query p50 {statistics.median(refreshes) * 1000:.2f} ms, "
        f"exposition ({len(body)} bytes) p50 {statistics.median(renders) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
