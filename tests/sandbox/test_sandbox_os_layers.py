"""The OS layers of a worker as seen by code that escaped the interpreter (issue 9 item
8, DESIGN §4.5): connector code cannot make these syscalls itself, so a probe applies
the worker's own isolation (:func:`bollard.sandbox.isolation.isolate`) to a child
Python process and makes them there, against a real worker of a real pool.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bollard.sandbox.job import Job
from bollard.sandbox.pool import SandboxPool
from tests.support.sandbox_os import (
    PROBE_HELPERS,
    PROBE_ON_TARGET,
    nobody_needs_read_caps,
    run_probe,
    run_suite_as_nobody,
)
from tests.support.standin import Egress

pytestmark = pytest.mark.asyncio(loop_scope="module")

UID_BASE = 1_900_100_000

PROBE = (
    r"""
import ctypes, json, os, resource, sys
from bollard.sandbox import isolation
target, uid = int(sys.argv[1]), int(sys.argv[2])
layers = isolation.isolate(memory_bytes=64 * 1024 * 1024, cpu_budget_s=5, uid=uid)
"""
    + PROBE_HELPERS
    + PROBE_ON_TARGET
    + r"""
attempt("stat_host_file", lambda: os.stat("/etc/passwd"))
attempt("lstat_host_file", lambda: os.lstat("/etc/hostname"))
"""
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1, uid_range=(UID_BASE, 8))
    yield p
    await p.close()


async def other_worker(pool: SandboxPool, egress: Egress) -> int:
    """The pid of an idle worker of ``pool`` (another tenant's, for the probe)."""
    await pool.run(
        Job(
            key="victim:v1",
            tenant="victim",
            source="def execute(ctx):\n    return 1\n",
            entrypoint="execute",
            operation="x",
            params={},
            secrets={},
            http_handler=egress,
        )
    )
    (pid,) = pool.stats()["victim:v1/victim"]["idle_pids"]
    return int(pid)


async def test_a_worker_cannot_reschedule_signal_or_limit_another(
    pool: SandboxPool, egress: Egress, tmp_path: Path
) -> None:
    target = await other_worker(pool, egress)
    results = run_probe(tmp_path, PROBE, target, UID_BASE + 100)
    layers = results["layers"]
    assert isinstance(layers, dict)
    assert layers["seccomp"] is True, layers
    if os.environ.get("BOLLARD_UNPRIVILEGED_RUN"):
        # Started by test_sandbox_suite_as_an_unprivileged_user, which checked that user
        # namespaces are allowed: the network namespace comes through one.
        assert layers["network_namespace"] is True, layers
        assert str(layers["unprivileged_uid"]).startswith("not root"), layers
    for name in ("sched_setaffinity", "sched_setscheduler", "sched_setparam", "setpriority"):
        assert results[name] == 1, (name, results[name])  # EPERM
    for name in ("ioprio_set", "prlimit", "kill"):
        assert results[name] == 1, (name, results[name])
    # Host files are not even there to stat (their size, owner and times stay hidden).
    assert results["stat_host_file"] in (1, 2, 13), results["stat_host_file"]
    assert results["lstat_host_file"] in (1, 2, 13), results["lstat_host_file"]
    # The victim still answers.
    assert (await other_worker(pool, egress)) == target


@pytest.mark.skipif(os.geteuid() != 0, reason="workers change uid only when the host runs as root")
async def test_each_worker_runs_under_its_own_uid(pool: SandboxPool, egress: Egress) -> None:
    source = "def execute(ctx):\n    return 1\n"
    for tenant in ("a", "b", "c"):
        await pool.run(
            Job(
                key="uids:v1",
                tenant=tenant,
                source=source,
                entrypoint="execute",
                operation="x",
                params={},
                secrets={},
                http_handler=egress,
            )
        )
    pids = [pool.stats()[f"uids:v1/{t}"]["idle_pids"][0] for t in ("a", "b", "c")]
    uids = [os.stat(f"/proc/{pid}").st_uid for pid in pids]
    assert len(set(uids)) == 3, uids
    assert all(UID_BASE <= uid < UID_BASE + 8 for uid in uids), uids
    assert pool.isolation_layers()["unprivileged_uid"] in {str(u) for u in uids}


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_uid_range_is_checked() -> None:
    with pytest.raises(ValueError, match="uid_range"):
        SandboxPool(uid_range=(0, 10))
    with pytest.raises(ValueError, match="uid_range"):
        SandboxPool(uid_range=(1000, 0))


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_sandbox_suite_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The non-root path: the sandbox tests, run once as ``nobody`` (workers enter a user
    namespace for their network namespace and keep the host's uid)."""
    returncode, tail = run_suite_as_nobody(
        tmp_path,
        [
            "tests/sandbox/test_sandbox_attacks.py",
            "tests/sandbox/test_sandbox_hardening.py",
            "tests/sandbox/test_sandbox_os_layers.py",
            "tests/sandbox/test_sandbox_pool.py::test_isolation_layers_reported",
            "tests/sandbox/test_sandbox_pool.py::test_escaped_code_is_contained_by_os_layers",
        ],
        read_caps=nobody_needs_read_caps(),
    )
    assert returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail
