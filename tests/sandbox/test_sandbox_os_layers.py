"""The OS layers of a worker as seen by code that escaped the interpreter (issue 9 item
8, DESIGN §4.5): connector code cannot make these syscalls itself, so a probe applies
the worker's own isolation (:func:`bollard.sandbox.isolation.isolate`) to a child
Python process and makes them there, against a real worker of a real pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bollard.sandbox.job import Job
from bollard.sandbox.pool import SandboxPool
from tests.support.paths import REPO
from tests.support.standin import Egress

pytestmark = pytest.mark.asyncio(loop_scope="module")

UID_BASE = 1_900_100_000

PROBE = r"""
import ctypes, json, os, resource, sys
from bollard.sandbox import isolation
target, uid = int(sys.argv[1]), int(sys.argv[2])
layers = isolation.isolate(memory_bytes=64 * 1024 * 1024, cpu_budget_s=5, uid=uid)
libc = ctypes.CDLL(None, use_errno=True)
results = {"layers": layers, "uid": os.getuid()}
def attempt(name, fn):
    try:
        fn()
        results[name] = "succeeded"
    except OSError as e:
        results[name] = e.errno
def syscall(number, *args):
    def call():
        if libc.syscall(number, *[ctypes.c_long(a) for a in args]) != 0:
            raise OSError(ctypes.get_errno(), "")
    return call
attempt("sched_setaffinity", lambda: os.sched_setaffinity(target, {0}))
attempt("sched_setscheduler", lambda: os.sched_setscheduler(target, os.SCHED_IDLE, os.sched_param(0)))
attempt("sched_setparam", lambda: os.sched_setparam(target, os.sched_param(0)))
attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, target, 19))
attempt("ioprio_set", syscall(251, 1, target, (3 << 13)))  # x86_64 ioprio_set(WHO_PROCESS, pid, IDLE)
attempt("prlimit", lambda: resource.prlimit(target, resource.RLIMIT_NOFILE, (1, 1)))
attempt("kill", lambda: os.kill(target, 0))
attempt("stat_host_file", lambda: os.stat("/etc/passwd"))
attempt("lstat_host_file", lambda: os.lstat("/etc/hostname"))
os.write(1, json.dumps(results).encode())
"""


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


def probe(tmp_path: Path, target: int, uid: int) -> dict[str, object]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    out = subprocess.run(
        [sys.executable, "-I", "-B", str(script), str(target), str(uid)],
        capture_output=True,
        env={},
        cwd="/",
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


async def test_a_worker_cannot_reschedule_signal_or_limit_another(
    pool: SandboxPool, egress: Egress, tmp_path: Path
) -> None:
    target = await other_worker(pool, egress)
    results = probe(tmp_path, target, UID_BASE + 100)
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


NOBODY = 65534


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
# Only to read an interpreter installed under a directory nobody may not enter (e.g.
# pyenv in /root): the worker loses it when it enters its user namespace.
READ_CAPS = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def _userns_refusal() -> str | None:
    """Why an unprivileged user cannot create a user namespace here, or None."""
    out = subprocess.run([*AS_NOBODY, "unshare", "-Un", "true"], capture_output=True, timeout=30)
    if out.returncode == 0:
        return None
    return out.stderr.decode().strip() or f"unshare exited with status {out.returncode}"


def _nobody_needs_read_caps() -> bool:
    # setpriv execs the interpreter while it still has its capabilities: try a child.
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import pytest'], check=True)"
    out = subprocess.run([*AS_NOBODY, sys.executable, "-c", child], capture_output=True, timeout=60)
    return out.returncode != 0


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_sandbox_suite_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The non-root path: the sandbox tests, run once as ``nobody`` (workers enter a user
    namespace for their network namespace and keep the host's uid)."""
    if os.environ.get("BOLLARD_UNPRIVILEGED_RUN") or os.geteuid() != 0:
        pytest.skip("already running unprivileged: this run is the non-root path")
    refusal = _userns_refusal()
    if refusal is not None:
        pytest.skip(f"the kernel refuses user namespaces to an unprivileged user: {refusal}")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    os.chown(tmp_path, NOBODY, NOBODY)
    out = subprocess.run(
        [
            *AS_NOBODY,
            *(READ_CAPS if _nobody_needs_read_caps() else []),
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(home / "pytest"),
            "tests/sandbox/test_sandbox_attacks.py",
            "tests/sandbox/test_sandbox_hardening.py",
            "tests/sandbox/test_sandbox_os_layers.py",
            "tests/sandbox/test_sandbox_pool.py::test_isolation_layers_reported",
            "tests/sandbox/test_sandbox_pool.py::test_escaped_code_is_contained_by_os_layers",
        ],
        capture_output=True,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), "BOLLARD_UNPRIVILEGED_RUN": "1"},
        timeout=900,
    )
    tail = out.stdout.decode()[-3000:]
    assert out.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail
