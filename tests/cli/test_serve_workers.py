"""``bollard serve --workers N``: N server processes on one port (performance issue 15).

A real supervisor and its children (tests/support/standin.py BollardServer): both
processes answer on the one port, state (tokens, the admin token, executions) is shared
through the database, SIGTERM stops every process (servers and their sandbox workers),
and children do not outlive a killed supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.standin import BollardServer

ENV = {"BOLLARD_SECRET_KEY": "workers-test", "BOLLARD_RELOAD": "false"}


def _integration(root: Path) -> Path:
    folder = root / "integrations" / "nop"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"title": "Nop", "authMethod": "none", "operations": [{"name": "nop"}]})
    )
    (folder / "connector.py").write_text("def execute(ctx):\n    return {'ok': True}\n")
    return root / "integrations"


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout
        kids = {int(p) for p in out.split()}
        todo.extend(kids - found)
        found |= kids
    return found


def _answering_pids(url: str, tries: int = 60) -> set[int]:
    pids = set()
    for _ in range(tries):  # a new connection each time: the kernel picks a listener
        with httpx.Client(base_url=url, timeout=10) as c:
            pids.add(c.get("/healthz").json()["pid"])
        if len(pids) > 1:
            break
    return pids


def _wait_gone(pids: set[int], timeout_s: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout_s
    left = {p for p in pids if _alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in left if _alive(p)}
    return left


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = BollardServer(_integration(tmp_path), tmp_path / "data", ENV, workers=2)
    try:
        deadline = time.monotonic() + 60
        while len(_descendants(server.proc.pid) & _server_children(server)) < 2:
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def _server_children(server: BollardServer) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _wait_both_answer(server: BollardServer) -> set[int]:
    deadline = time.monotonic() + 60
    pids: set[int] = set()
    while len(pids) < 2 and time.monotonic() < deadline:
        pids |= _answering_pids(server.url)
    return pids


def test_two_processes_answer_on_one_port_and_share_state(served: BollardServer) -> None:
    children = _server_children(served)
    assert len(children) == 2
    assert _wait_both_answer(served) == children
    admin = (served.log.parent / "admin.token").read_text().strip()
    log = served.log.read_text()
    assert log.count("Admin token (created now") == 1  # the supervisor made it, once
    # A token created through one process works on the other: both read the database.
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {admin}"}) as c:
        r = c.post("/api/tokens", json={"role": "agent", "name": "shared"})
        assert r.status_code in (200, 201), r.text
        agent = r.json()["token"]
    seen: set[int] = set()
    calls = 0
    for _ in range(80):
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {agent}"}) as c:
            seen.add(c.get("/healthz").json()["pid"])
            r = c.post("/api/integrations/nop/operations/nop", json={"params": {}})
            assert r.status_code == 200, r.text
            calls += 1
        if seen == children and calls >= 4:
            break
    assert seen == children
    # Every call is in the one execution log, whichever process ran it.
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {admin}"}) as c:
        while True:
            listed = c.get("/api/executions", params={"limit": 100}).json()
            total = listed.get("total", len(listed.get("executions", [])))
            if total >= calls or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert total >= calls


def _with_sandbox_workers(server: BollardServer) -> set[int]:
    """Call the connector over new connections until both servers run a sandbox worker;
    every process under the supervisor then."""
    admin = (server.log.parent / "admin.token").read_text().strip()
    everything: set[int] = set()
    for _ in range(80):
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"}) as c:
            assert c.post("/api/integrations/nop/operations/nop", json={"params": {}}).status_code == 200
        everything = _descendants(server.proc.pid)
        if all(_descendants(child) for child in _server_children(server)):
            break
    return everything


def test_sigterm_stops_every_process(served: BollardServer) -> None:
    _wait_both_answer(served)
    everything = _with_sandbox_workers(served)  # servers and their sandbox workers
    assert len(everything) >= 4, everything
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(40) == 0
    assert _wait_gone(everything) == set()


def test_children_stop_when_the_supervisor_is_killed(served: BollardServer) -> None:
    _wait_both_answer(served)
    everything = _with_sandbox_workers(served)
    assert len(everything) >= 4, everything
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait(10)
    assert _wait_gone(everything) == set()


def test_the_default_is_one_process_on_sqlite_and_one_per_core_on_postgresql(tmp_path: Path) -> None:
    """Without --workers/BOLLARD_WORKERS: SQLite would make limits and events per process,
    so one process; PostgreSQL shares them, so one per core."""
    from bollard.platform.cli.serve import default_workers
    from bollard.platform.settings import Settings

    sqlite = Settings(data_dir=tmp_path)
    pg = Settings(data_dir=tmp_path, database_url="postgresql+asyncpg://127.0.0.1/test")
    assert default_workers(sqlite) == 1
    assert default_workers(pg) == (os.cpu_count() or 1)
