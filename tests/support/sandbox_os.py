"""A worker's OS layers seen from outside the interpreter (DESIGN §4.5), for
``tests/sandbox/test_sandbox_os_layers.py`` (Python workers) and ``test_js_os_layers.py``
(Deno workers):

- a probe script is the test's own head (imports ``ctypes, json, os`` and more, reads
  ``target`` and ``uid`` from ``sys.argv``, applies the worker's isolation to itself and
  keeps what it reports as ``layers``), then :data:`PROBE_HELPERS`, then attempts, each
  ``attempt(name, fn)`` recording ``"succeeded"`` or the errno under ``name``;
  :data:`PROBE_ON_TARGET` holds the attempts both profiles make on another worker;
- :func:`run_probe` runs it in an isolated child Python and returns the results;
- :func:`run_suite_as_nobody` runs test files once more as ``nobody`` (the non-root path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

PROBE_HELPERS = r"""
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
"""

# what another tenant's worker (pid ``target``) must be safe from; needs ``resource``
PROBE_ON_TARGET = r"""
attempt("sched_setaffinity", lambda: os.sched_setaffinity(target, {0}))
attempt("sched_setscheduler", lambda: os.sched_setscheduler(target, os.SCHED_IDLE, os.sched_param(0)))
attempt("sched_setparam", lambda: os.sched_setparam(target, os.sched_param(0)))
attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, target, 19))
attempt("ioprio_set", syscall(251, 1, target, (3 << 13)))  # x86_64 ioprio_set(WHO_PROCESS, pid, IDLE)
attempt("prlimit", lambda: resource.prlimit(target, resource.RLIMIT_NOFILE, (1, 1)))
attempt("kill", lambda: os.kill(target, 0))
"""


def run_probe(tmp_path: Path, script: str, *args: object) -> dict[str, object]:
    """Run ``script`` (see the module docstring; its results are printed as JSON at the
    end) as ``python -I -B probe.py ARGS…`` with no environment in ``/``; its results.
    Fails the test when the probe exits non-zero."""
    path = tmp_path / "probe.py"
    path.write_text(script + "\nos.write(1, json.dumps(results).encode())\n")
    out = subprocess.run(
        [sys.executable, "-I", "-B", str(path), *map(str, args)],
        capture_output=True,
        env={},
        cwd="/",
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
# Only to read an interpreter installed under a directory nobody may not enter (e.g.
# pyenv in /root): the worker loses it when it enters its user namespace.
READ_CAPS = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def userns_refusal() -> str | None:
    """Why an unprivileged user cannot create a user namespace here, or None."""
    out = subprocess.run([*AS_NOBODY, "unshare", "-Un", "true"], capture_output=True, timeout=30)
    if out.returncode == 0:
        return None
    return out.stderr.decode().strip() or f"unshare exited with status {out.returncode}"


def nobody_needs_read_caps() -> bool:
    """Whether ``nobody`` needs :data:`READ_CAPS` to start this interpreter."""
    # setpriv execs the interpreter while it still has its capabilities: try a child.
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import pytest'], check=True)"
    out = subprocess.run([*AS_NOBODY, sys.executable, "-c", child], capture_output=True, timeout=60)
    return out.returncode != 0


def run_suite_as_nobody(
    tmp_path: Path, tests: list[str], *, read_caps: bool, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run ``pytest -q tests…`` from the repository as ``nobody`` (with
    ``BOLLARD_UNPRIVILEGED_RUN=1`` and ``env``; :data:`READ_CAPS` when ``read_caps``);
    its exit status and the last 3000 characters of its output. Skips the test when
    already unprivileged or when the kernel refuses user namespaces to ``nobody``."""
    if os.environ.get("BOLLARD_UNPRIVILEGED_RUN") or os.geteuid() != 0:
        pytest.skip("already running unprivileged: this run is the non-root path")
    refusal = userns_refusal()
    if refusal is not None:
        pytest.skip(f"the kernel refuses user namespaces to an unprivileged user: {refusal}")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    os.chown(tmp_path, NOBODY, NOBODY)
    out = subprocess.run(
        [
            *AS_NOBODY,
            *(READ_CAPS if read_caps else []),
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(home / "pytest"),
            *tests,
        ],
        capture_output=True,
        cwd=REPO,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "BOLLARD_UNPRIVILEGED_RUN": "1",
            **(env or {}),
        },
        timeout=900,
    )
    return out.returncode, out.stdout.decode()[-3000:]
