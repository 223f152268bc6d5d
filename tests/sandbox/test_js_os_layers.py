"""The OS layers of a Deno worker (DESIGN §4.2, §4.5): the JS profile's seccomp filter and
Landlock ruleset must refuse what the Python worker's refuse. A probe applies the JS
profile (:func:`bollard.sandbox.js.profile.js_profile`, the filter the launcher hands to
Deno) to a child Python process and makes the calls there, against a real worker of a
real pool; and the real Deno worker is checked from outside through /proc."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bollard.sandbox.job import Job
from bollard.sandbox.js import WORKER_SCRIPT, deno_binary
from bollard.sandbox.pool import SandboxPool
from tests.support.deno import require_deno
from tests.support.sandbox_os import PROBE_HELPERS, PROBE_ON_TARGET, run_probe, run_suite_as_nobody
from tests.support.standin import Egress

pytestmark = pytest.mark.asyncio(loop_scope="module")

UID_BASE = 1_900_200_000

PROBE = (
    r"""
import ctypes, json, os, resource, socket, sys
from bollard.sandbox import isolation
from bollard.sandbox.js.profile import js_profile
target, uid, deno, script = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
layers = isolation.isolate(memory_bytes=512 * 1024 * 1024, cpu_budget_s=5, uid=uid,
                           profile=js_profile(deno, script))
"""
    + PROBE_HELPERS
    + PROBE_ON_TARGET
    + r"""
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
attempt("prlimit_self_set", lambda: resource.prlimit(0, resource.RLIMIT_CPU, (1000, 1000)))
attempt("tgkill_other", syscall(234, target, target, 0))  # x86_64 tgkill
attempt("ptrace_attach", syscall(101, 16, target, 0, 0))  # x86_64 ptrace(PTRACE_ATTACH)
attempt("socket_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("socket_unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
attempt("socketpair_inet", syscall(53, 2, 1, 0, 0))  # x86_64 socketpair(AF_INET, …)
attempt("fork", fork)
attempt("unshare", syscall(272, 0x40000000))  # unshare(CLONE_NEWNET)
attempt("mount", syscall(165, 0, 0, 0, 0, 0))
attempt("stat_host_file", lambda: os.stat("/etc/passwd"))
attempt("read_host_file", lambda: open("/etc/hostname", "rb").read())
attempt("write_tmp", lambda: open("/tmp/bollard-js-probe", "wb").write(b"x"))
attempt("exec_shell", lambda: os.execv("/bin/sh", ["sh", "-c", "true"]))
attempt("read_worker_script", lambda: open(script, "rb").read(1))
attempt("read_through_proc_root", lambda: open("/proc/self/root/etc/hostname", "rb").read())
attempt("read_other_proc", lambda: open(f"/proc/{target}/status", "rb").read())
attempt("read_own_maps", lambda: open("/proc/self/maps", "rb").read(1))
"""
)


@pytest.fixture(autouse=True)
def _deno() -> None:
    require_deno()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1, uid_range=(UID_BASE, 8))
    yield p
    await p.close()


async def js_worker(pool: SandboxPool, egress: Egress, tenant: str = "victim") -> int:
    """The pid of an idle Deno worker of ``pool``."""
    await pool.run(
        Job(
            key="jsvictim:v1",
            tenant=tenant,
            source="function execute(ctx: any) { return 1; }\n",
            entrypoint="execute",
            operation="x",
            params={},
            secrets={},
            http_handler=egress,
            filename="connector.ts",
        )
    )
    (pid,) = pool.stats()[f"jsvictim:v1/{tenant}"]["idle_pids"]
    return int(pid)


def probe(tmp_path: Path, target: int, uid: int) -> dict[str, object]:
    deno = deno_binary()
    assert deno is not None
    return run_probe(tmp_path, PROBE, target, uid, deno, WORKER_SCRIPT)


async def test_the_js_profile_refuses_what_the_python_profile_refuses(
    pool: SandboxPool, egress: Egress, tmp_path: Path
) -> None:
    target = await js_worker(pool, egress)
    results = probe(tmp_path, target, UID_BASE + 100)
    layers = results["layers"]
    assert isinstance(layers, dict)
    assert layers["seccomp"] is True and str(layers["landlock"]).startswith("abi"), layers
    eperm = 1
    for name in (
        "sched_setaffinity", "sched_setscheduler", "sched_setparam", "setpriority", "ioprio_set",
        "prlimit", "prlimit_self_set", "kill", "tgkill_other", "ptrace_attach", "socket_inet",
        "socket_unix", "socketpair_inet", "fork", "unshare", "mount",
    ):  # fmt: skip
        assert results[name] == eperm, (name, results[name])
    # Landlock: nothing on the host is readable or writable; only Deno can be executed.
    eacces = 13
    for name in ("read_host_file", "exec_shell", "read_through_proc_root", "read_other_proc"):
        assert results[name] == eacces, (name, results[name])
    # The one difference from the Python profile (README, TypeScript connectors): Deno
    # looks paths up (its module, its cache directory), so path-based stat(2) is allowed
    # and a host file's metadata, never its content, is visible to escaped native code.
    assert results["stat_host_file"] in ("succeeded", 2), results["stat_host_file"]
    assert results["write_tmp"] in (eacces, eperm), results["write_tmp"]
    assert results["read_worker_script"] == "succeeded"
    assert results["read_own_maps"] == "succeeded"  # its own /proc/<pid> only (Rust reads maps)
    assert (await js_worker(pool, egress)) == target  # the victim still answers


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


async def test_the_deno_worker_runs_under_every_layer(pool: SandboxPool, egress: Egress) -> None:
    pid = await js_worker(pool, egress, tenant="inspected")
    status = _status(pid)
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # filter mode
    assert Path(f"/proc/{pid}/exe").resolve() == Path(deno_binary() or "").resolve()
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    if os.geteuid() == 0:
        uid = int(status["Uid"].split()[0])
        assert UID_BASE <= uid < UID_BASE + 8, status["Uid"]
    layers = pool.js_isolation_layers() or {}
    for name in ("network_namespace", "rlimits", "no_new_privs", "seccomp"):
        assert layers[name] is True, (name, layers)
    limits = {
        line[:26].strip(): line[26:].split()[0]
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    }
    assert limits["Max file size"] == "0", limits
    assert limits["Max data size"] != "unlimited" and limits["Max cpu time"] != "unlimited", limits
    assert limits["Max core file size"] == "0", limits


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_js_suite_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The non-root path for Deno workers: the JS sandbox tests, run once as ``nobody``
    (the launcher enters a user namespace for the network namespace; no uid change)."""
    returncode, tail = run_suite_as_nobody(
        tmp_path,
        ["tests/sandbox/test_js_attacks.py", "tests/sandbox/test_js_os_layers.py"],
        read_caps=True,
        env={"BOLLARD_REQUIRE_DENO": os.environ.get("BOLLARD_REQUIRE_DENO", "")},
    )
    assert returncode == 0, tail
    assert " passed" in tail and "failed" not in tail and "1 skipped" in tail, tail  # only this test
