"""Attack tests for connector output (hardening issue item 10, DESIGN §4.6): a flood of
empty lines is truncated in the worker and the result kept; a lone surrogate in a log
line or in the result never crashes the worker."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bollard.sandbox.job import Job, RunResult
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from bollard.sandbox.protocol import MAX_LOG_LINES
from tests.support.standin import Egress

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST = Limits(wall_time_ms=20_000, cpu_time_ms=5_000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1)
    yield p
    await p.close()


async def run(pool: SandboxPool, egress: Egress, source: str) -> RunResult:
    return await pool.run(
        Job(
            key="output-test:v1",
            source=textwrap.dedent(source),
            entrypoint="execute",
            operation="op",
            params={},
            secrets={},
            http_handler=egress,
            limits=FAST,
        )
    )


async def test_twenty_thousand_empty_prints_keep_the_result(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            for _ in range(20000):
                print()
            return {"kept": True}
        """,
    )
    assert r.value == {"kept": True}
    assert len(r.logs) <= MAX_LOG_LINES
    assert r.logs[-1] == f"[log truncated at {MAX_LOG_LINES - 1} lines]"
    assert set(r.logs[:-1]) == {""}


async def test_lone_surrogate_in_a_log_line_keeps_the_result(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            ctx.log("bad \\ud800 line")
            print("\\udfff")
            return "done"
        """,
    )
    assert r.value == "done"
    assert r.logs == ["bad \ufffd line", "\ufffd"]


async def test_lone_surrogate_in_the_result_is_replaced(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            return {"text": "a\\ud800b", "\\udc00": 1}
        """,
    )
    assert r.value == {"text": "a\ufffdb", "\ufffd": 1}
