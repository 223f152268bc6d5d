"""CPU priority per integration key (issue 14 item 5; ``bollard.sandbox.priority``): the
workers of a key that keeps hitting its CPU limit start at a higher nice value and in a
lower-priority autogroup, read back from the kernel (``/proc/<pid>/stat`` field 19,
``/proc/<pid>/autogroup``), a healthy key's do not, and the key recovers after clean
runs. Real worker processes, real loops."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bollard.sandbox.errors import LimitExceeded
from bollard.sandbox.job import Job
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from bollard.sandbox.priority import (
    HALF_LIFE_RUNS,
    LOWER_AT,
    MAX_SCORE,
    RESTORE_BELOW,
    Priority,
    StrikeScores,
)
from bollard.sandbox.protocol import HttpRequest, HttpResponse
from tests.support.deno import require_deno

# loops until its CPU limit when asked, else answers at once
PY = (
    "def execute(ctx):\n    if ctx.params.get('loop'):\n        while True:\n            pass\n    return 1\n"
)
TS = (
    "const connector = {\n  execute(ctx: any): any {\n"
    "    if (ctx.params.loop) { for (;;) { try { } catch { } } }\n    return 1;\n  },\n};\n"
)
LIMITS = Limits(wall_time_ms=20_000, cpu_time_ms=100)
OTHER_LIMITS = Limits(wall_time_ms=20_000, cpu_time_ms=150)
HOST_NICE = os.getpriority(os.PRIO_PROCESS, 0)
LOWERED = min(19, HOST_NICE + 10)
AUTOGROUPS = Path("/proc/self/autogroup").exists()  # the kernel groups tasks per session

pytestmark = pytest.mark.skipif(HOST_NICE >= 19, reason="the tests run at nice 19: no lower priority left")


async def no_http(request: HttpRequest) -> HttpResponse:
    raise AssertionError("no HTTP here")


async def call(
    pool: SandboxPool, key: str, *, loop: bool = False, source: str = PY, limits: Limits = LIMITS
) -> Any:
    job = Job(
        key=key, source=source, entrypoint="execute", operation="op", params={"loop": loop},
        secrets={}, http_handler=no_http, limits=limits,
        filename="connector.ts" if source is TS else "connector.py",
    )  # fmt: skip
    return (await pool.run(job)).value


def nice_of(pid: int) -> int:
    """Field 19 of ``/proc/<pid>/stat`` (what the kernel schedules the process at)."""
    fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    return int(fields[19 - 3])


def autogroup_of(pid: int) -> int | None:
    """The nice value of ``pid``'s autogroup, ``None`` without autogroups."""
    if not AUTOGROUPS:
        return None
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def lowered(pid: int) -> bool:
    """Whether the worker ``pid`` runs at the lower priority, both knobs checked."""
    nice, group = nice_of(pid), autogroup_of(pid)
    if nice == LOWERED and group in (None, 10):
        return True
    assert (nice, group) == (HOST_NICE, 0 if AUTOGROUPS else None), (nice, group)
    return False


def thread_nices(pid: int) -> set[int]:
    """The nice value of every thread of ``pid``."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_bytes().rpartition(b")")[2].split()
        out.add(int(fields[19 - 3]))
    return out


def may_lower_nice() -> bool:
    """Whether this process has ``CAP_SYS_NICE`` (bit 23 of its effective capabilities)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 23 & 1)
    return False


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def idle_pid(pool: SandboxPool, key: str) -> int:
    pids = pool.stats()[key]["idle_pids"]
    assert len(pids) == 1, pids
    return int(pids[0])


async def test_a_looping_key_gets_lower_priority_and_recovers() -> None:
    pool = SandboxPool(workers_per_integration=1, idle_timeout_s=60)
    try:
        assert await call(pool, "healthy:v1") == 1
        assert not lowered(idle_pid(pool, "healthy:v1"))
        for _ in range(int(LOWER_AT) - 1):
            with pytest.raises(LimitExceeded):
                await call(pool, "loops:v1", loop=True)
        assert pool.priorities()["loops:v1"]["lowered"] is False  # two strikes: not yet
        assert await call(pool, "loops:v1") == 1
        assert not lowered(idle_pid(pool, "loops:v1"))
        for _ in range(int(LOWER_AT)):
            with pytest.raises(LimitExceeded):
                await call(pool, "loops:v1", loop=True)  # each kills its worker
        assert pool.priorities()["loops:v1"]["lowered"] is True
        # the key's next worker starts lowered; another key's, old or new, does not
        assert await call(pool, "loops:v1") == 1
        lowered_pid = idle_pid(pool, "loops:v1")
        assert lowered(lowered_pid)
        assert os.getpriority(os.PRIO_PROCESS, lowered_pid) == LOWERED
        assert await call(pool, "healthy:v1") == 1
        assert not lowered(idle_pid(pool, "healthy:v1"))
        assert await call(pool, "fresh:v1") == 1
        assert not lowered(idle_pid(pool, "fresh:v1"))
        assert "healthy:v1" not in pool.priorities()
        # clean runs let it recover (at most 27, from the highest score)
        runs = 0
        while pool.priorities()["loops:v1"]["lowered"]:
            assert await call(pool, "loops:v1") == 1
            runs += 1
            assert runs <= 27
        assert idle_pid(pool, "loops:v1") == lowered_pid  # the same worker served them
        # a live worker goes back up only where the host may lower a nice value
        expected = HOST_NICE if may_lower_nice() else LOWERED
        assert nice_of(lowered_pid) == expected
        if os.geteuid() == 0 and AUTOGROUPS:  # a non-dumpable worker's /proc files are root's
            assert autogroup_of(lowered_pid) == 0
        # and its next new worker starts at the host's priority (other limits: a new one)
        assert await call(pool, "loops:v1", limits=OTHER_LIMITS) == 1
        new_pid = idle_pid(pool, "loops:v1")
        assert new_pid != lowered_pid
        assert not lowered(new_pid)
    finally:
        await pool.close()


async def test_live_workers_of_a_key_are_lowered_when_it_crosses() -> None:
    pool = SandboxPool(workers_per_integration=2, idle_timeout_s=60)
    try:
        assert await call(pool, "mixed:v1", limits=OTHER_LIMITS) == 1  # parked, other limits
        parked = idle_pid(pool, "mixed:v1")
        for _ in range(int(LOWER_AT)):
            with pytest.raises(LimitExceeded):
                await call(pool, "mixed:v1", loop=True)
        # raising needs no privilege for a process of one's own uid; a worker under
        # another uid needs CAP_SYS_NICE (else it keeps its priority until replaced)
        may = may_lower_nice() or uid_of(parked) == os.geteuid()
        assert nice_of(parked) == (LOWERED if may else HOST_NICE)
        if os.geteuid() == 0 and AUTOGROUPS:
            assert autogroup_of(parked) == 10
    finally:
        await pool.close()


async def test_off_with_strike_nice_zero() -> None:
    pool = SandboxPool(workers_per_integration=1, strike_nice=0)
    try:
        for _ in range(int(LOWER_AT)):
            with pytest.raises(LimitExceeded):
                await call(pool, "loops:v1", loop=True)
        assert await call(pool, "loops:v1") == 1
        assert not lowered(idle_pid(pool, "loops:v1"))
        assert pool.priorities()["loops:v1"]["lowered"] is False
    finally:
        await pool.close()


async def test_a_new_source_starts_clean() -> None:
    pool = SandboxPool(workers_per_integration=1)
    try:
        for _ in range(int(LOWER_AT)):
            with pytest.raises(LimitExceeded):
                await call(pool, "fixed:v1", loop=True)
        assert pool.priorities()["fixed:v1"]["lowered"] is True
        assert await call(pool, "fixed:v1", source=PY + "\n# fixed\n") == 1
        assert not lowered(idle_pid(pool, "fixed:v1"))
        assert "fixed:v1" not in pool.priorities()
    finally:
        await pool.close()


async def test_every_thread_of_a_lowered_deno_worker() -> None:
    require_deno()
    pool = SandboxPool(workers_per_integration=1)
    try:
        for _ in range(int(LOWER_AT)):
            with pytest.raises(LimitExceeded):
                await call(
                    pool, "ts:v1", loop=True, source=TS, limits=Limits(wall_time_ms=20_000, cpu_time_ms=300)
                )
        assert await call(pool, "ts:v1", source=TS) == 1
        pid = idle_pid(pool, "ts:v1")
        assert len(list(Path(f"/proc/{pid}/task").iterdir())) > 1  # V8 runs threads
        assert thread_nices(pid) == {LOWERED}
        assert autogroup_of(pid) in (None, 10)
    finally:
        await pool.close()


def test_scores_decay_with_hysteresis() -> None:
    scores = StrikeScores()
    assert [scores.strike("k") for _ in range(3)] == [False, False, True]
    assert scores.lowered("k")
    # it halves every HALF_LIFE_RUNS clean runs: 3 → 1.5, then below 1 after 13 in all
    assert not any(scores.clean("k") for _ in range(HALF_LIFE_RUNS))
    assert scores.snapshot()["k"]["score"] == pytest.approx(1.5, abs=0.001)
    assert [scores.clean("k") for _ in range(5)] == [False, False, False, False, True]
    assert not scores.lowered("k")
    for _ in range(100):
        scores.strike("k")
    assert scores.snapshot()["k"]["score"] == MAX_SCORE
    runs = 0
    while scores.lowered("k"):
        scores.clean("k")
        runs += 1
    assert runs == 27  # from MAX_SCORE to below RESTORE_BELOW
    assert 0 < float(scores.snapshot()["k"]["score"]) < RESTORE_BELOW
    while "k" in scores.snapshot():  # a score that decayed to nothing is dropped
        scores.clean("k")
    with pytest.raises(ValueError):
        StrikeScores(nice_increment=-1)
    assert Priority.parse(Priority(19, 10).arg()) == Priority(19, 10)
    for bad in ("", "19", "19,x", "1,2,3"):
        with pytest.raises(ValueError):
            Priority.parse(bad)
