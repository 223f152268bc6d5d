"""Each script in ``examples/`` runs as its docstring says (README "Examples").

The HTTP example talks to a real ``bollard serve`` subprocess on a free 127.0.0.1 port
with a temporary data directory and the shipped integrations, run from a working
directory where that data directory is ``.bollard`` (as after ``make run``); the Python
example runs the library in process over the same shipped ``hotel`` integration.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.paths import REPO, SHIPPED

EXAMPLES = REPO / "examples"
START_TIMEOUT_S = 120  # a generous ceiling for a loaded machine, not a measured threshold


def clean_env() -> dict[str, str]:
    """The environment without BOLLARD_* settings, so the scripts use their defaults, and
    with buffered output as when a user pipes a script into another program."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BOLLARD_") and k != "PYTHONUNBUFFERED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    cwd: Path
    token: str


def serve(cwd: Path, integrations: Path) -> Iterator[Served]:
    """``bollard serve`` on a free port over ``integrations``, its data in ``cwd/.bollard``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (cwd / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bollard.platform.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--integrations", str(integrations), "--data-dir", ".bollard"],
        cwd=cwd,
        env=clean_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, (cwd / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "bollard serve did not answer /healthz"
            time.sleep(0.2)
        token = (cwd / ".bollard" / "admin.token").read_text().strip()
        yield Served(url, cwd, token)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("examples"), SHIPPED)


@pytest.fixture(scope="module")
def served_empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over an empty integrations directory of its own (uploads write there)."""
    cwd = tmp_path_factory.mktemp("upload")
    (cwd / "integrations").mkdir()
    yield from serve(cwd, cwd / "integrations")


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_invoke_over_http_lists_confirmed_reservations(served: Served) -> None:
    done = run_example("invoke_over_http.py", "--url", served.url, cwd=served.cwd)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] is True and body["operation"] == "list_reservations"
    assert body["data"] and {r["status"] for r in body["data"]} == {"confirmed"}


def test_invoke_over_http_fails_with_the_error_on_a_bad_token(served: Served) -> None:
    for args in ((), ("--cancel", "8")):
        done = run_example(
            "invoke_over_http.py", "--url", served.url, "--token", "not-a-token", *args, cwd=served.cwd
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert json.loads(done.stdout)["error"]["code"] == "unauthorized"
        assert "Traceback" not in done.stderr


def test_invoke_over_http_cancel_waits_for_the_approval(served: Served) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "invoke_over_http.py"), "--url", served.url, "--cancel", "8"],
        cwd=served.cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        # the line must arrive while the script still waits (not only when it exits)
        first = lines.get(timeout=START_TIMEOUT_S)
        assert first.startswith("HTTP 202: approval ") and first.strip().endswith("is pending"), first
        approval_id = first.split()[3]
        # a person approves it (here: the admin token over the API)
        r = httpx.post(
            f"{served.url}/api/approvals/{approval_id}/approve",
            headers={"Authorization": f"Bearer {served.token}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        out, err = proc.communicate(timeout=300)
        out = first + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    approval = json.loads(out[out.rindex("\n{") + 1 :])  # the last JSON printed: the decided approval
    assert approval["id"] == approval_id and approval["status"] == "succeeded"
    listed = run_example("invoke_over_http.py", "--url", served.url, cwd=served.cwd)
    assert 8 not in [r["id"] for r in json.loads(listed.stdout)["data"]]


def test_invoke_from_python(tmp_path: Path) -> None:
    # as from the repository root: --integrations defaults to ./integrations
    done = run_example("invoke_from_python.py", "--data-dir", str(tmp_path / "data"), cwd=REPO)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] is True and body["integration"] == "hotel"
    assert body["data"] and {r["status"] for r in body["data"]} == {"confirmed"}

    done = run_example(
        "invoke_from_python.py", "--data-dir", str(tmp_path / "data"), "--cancel", "8", cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    held = json.loads(done.stdout)
    assert held["status"] == "pending" and held["operation"] == "cancel_reservation"
    assert "held for approval" in done.stderr


def test_upload_zip_previews_installs_and_refuses_a_second_install(served_empty: Served) -> None:
    folder = SHIPPED / "countries"
    installed = served_empty.cwd / "integrations" / "countries"
    done = run_example(
        "upload_zip.py", str(folder), "--url", served_empty.url, "--dry-run", cwd=served_empty.cwd
    )
    assert done.returncode == 0, done.stdout + done.stderr
    preview = json.loads(done.stdout)
    assert preview["dryRun"] is True and preview["slug"] == "countries" and not installed.exists()

    done = run_example("upload_zip.py", str(folder), "--url", served_empty.url, cwd=served_empty.cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["installed"] is True and body["contentHash"] == preview["contentHash"]
    assert {p.name: p.read_bytes() for p in installed.iterdir()} == {
        p.name: p.read_bytes() for p in folder.iterdir()
    }
    listed = httpx.get(
        f"{served_empty.url}/api/integrations/countries",
        headers={"Authorization": f"Bearer {served_empty.token}"},
        timeout=30,
    ).json()
    assert listed["contentHash"] == body["contentHash"] and listed["status"] == "ready"

    done = run_example("upload_zip.py", str(folder), "--url", served_empty.url, cwd=served_empty.cwd)
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "conflict"


def test_direct_call_reads_with_the_client(served: Served) -> None:
    done = run_example("direct_call.py", "--url", served.url, cwd=served.cwd)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] is True and body["operation"] == "list_reservations"
    rows = [r for r in body["data"] if isinstance(r, dict)]  # sized for a model: may end in a note
    assert rows and {r["status"] for r in rows} == {"confirmed"}
    assert "hotel__cancel_reservation" in done.stderr  # the tool list it printed


def test_direct_call_waits_for_the_approval(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.token}"}
    confirmed = httpx.post(
        f"{served.url}/api/integrations/hotel/operations/list_reservations",
        json={"params": {"status": "confirmed"}},
        headers=headers,
        timeout=60,
    ).json()["data"]
    rid = confirmed[-1]["id"]  # one the other tests leave alone (they cancel 8)
    assert rid != 8
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "direct_call.py"), "--url", served.url, "--cancel", str(rid)],
        cwd=served.cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "waiting for a person's approval" in first, first
        # a person finds the held call and approves it (here: the admin token over the API)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            pending = httpx.get(
                f"{served.url}/api/approvals",
                params={"status": "pending", "integration": "hotel"},
                headers=headers,
                timeout=30,
            ).json()["approvals"]
            held = [a for a in pending if a["params"] == {"id": rid}]
            if held:
                break
            assert time.monotonic() < deadline and proc.poll() is None, "the call was never held"
            time.sleep(0.1)
        r = httpx.post(f"{served.url}/api/approvals/{held[0]['id']}/approve", headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["success"] is True and result["operation"] == "cancel_reservation"
    assert result["rowsAffected"] == 1


def test_direct_call_prints_a_typed_error(served: Served) -> None:
    done = run_example("direct_call.py", "--url", served.url, "--token", "not-a-token", cwd=served.cwd)
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "unauthorized" and "Traceback" not in done.stderr
