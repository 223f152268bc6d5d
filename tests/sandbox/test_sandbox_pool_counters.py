"""``SandboxPool.counters()``: the plain figures the platform's metrics read at scrape time
(live workers, busy slots, waiting callers, kills by reason), with real worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bollard.sandbox.errors import ExecutionTimeout, LimitExceeded
from bollard.sandbox.job import Job
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from bollard.sandbox.protocol import HttpRequest, HttpResponse

OK = "def execute(ctx):\n    return 1\n"
SLOW = "def execute(ctx):\n    n = 0\n    while n < 3000000:\n        n += 1\n    return n\n"
# waits on the host (no CPU), long enough to watch a second caller wait
BUSY = 'def execute(ctx):\n    return ctx.http.get("http://upstream.test/").status\n'
LIMITS = Limits(wall_time_ms=20_000, cpu_time_ms=5_000)


async def slow_http(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(1.0)
    return HttpResponse(200, "OK", {}, b"", request.url)


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def call(pool: SandboxPool, source: str, key: str = "c:v1", limits: Limits = LIMITS) -> object:
    job = Job(
        key=key, source=source, entrypoint="execute", operation="op", params={}, secrets={},
        http_handler=slow_http, limits=limits,
    )  # fmt: skip
    result = await pool.run(job)
    return result.value


async def test_workers_busy_slots_and_kills_by_reason() -> None:
    pool = SandboxPool(workers_per_integration=1, max_executions_per_worker=2, idle_timeout_s=1.5)
    try:
        assert pool.counters() == {"workers": 0, "busy": 0, "waiting": 0, "kills": {}}
        slow = asyncio.ensure_future(call(pool, BUSY, key="s:v1"))
        await until(lambda: pool.counters()["busy"] == 1)
        waiting = asyncio.ensure_future(call(pool, BUSY, key="s:v1"))  # the cap is 1: it waits
        await until(lambda: pool.counters()["waiting"] == 1 and pool.counters()["busy"] == 1)
        assert pool.counters()["workers"] >= 1
        await slow
        await waiting
        # two executions on one worker: recycled (max_executions_per_worker=2)
        await until(lambda: pool.counters()["kills"].get("recycled") == 1)
        # a CPU limit kills its worker
        with pytest.raises(LimitExceeded):
            await call(pool, SLOW, key="t:v1", limits=Limits(wall_time_ms=20_000, cpu_time_ms=50))
        assert pool.counters()["kills"].get("limit_exceeded") == 1
        # a wall-time timeout kills its worker: one still starting (``start_cancelled``) or
        # one already running (``timeout``), whichever the machine's speed makes it
        short = Limits(wall_time_ms=200, cpu_time_ms=5_000)

        def timed_out() -> int:
            kills = pool.counters()["kills"]
            return int(kills.get("start_cancelled", 0) + kills.get("timeout", 0))

        with pytest.raises(ExecutionTimeout):
            await call(pool, BUSY, key="w:v1", limits=short)
        await until(lambda: timed_out() == 1)
        # with time to finish: a worker that then stays idle
        assert (
            await call(pool, BUSY, key="w:v1", limits=Limits(wall_time_ms=20_000, cpu_time_ms=5_000)) == 200
        )
        with pytest.raises(ExecutionTimeout):  # the idle worker (same limits) times out running
            await call(pool, BUSY, key="w:v1", limits=short)
        await until(lambda: timed_out() == 2)
        assert pool.counters()["kills"].get("timeout", 0) >= 1
        # a new version retires the old one's idle worker; an idle worker is reaped
        assert await call(pool, OK, key="r:v1") == 1
        assert await call(pool, OK, key="r:v2") == 1
        assert pool.counters()["kills"].get("retired", 0) >= 1  # and any spare started for it
        await until(lambda: pool.counters()["kills"].get("idle", 0) >= 1)
        assert pool.counters()["busy"] == 0 and pool.counters()["waiting"] == 0
    finally:
        await pool.close()
    await until(lambda: pool.counters()["workers"] == 0)
