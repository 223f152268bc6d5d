"""A client Bollard did not write: the MCP Inspector's CLI (``@modelcontextprotocol/inspector``,
pinned in ``tests/node/package-lock.json``, installed by ``make test`` with ``npm ci``) lists
and calls Bollard's tools over streamable HTTP and over stdio.

Skipped with the reason only where the package could not be installed (no npm, or the
registry unreachable); with ``BOLLARD_REQUIRE_NODE=1`` (CI) that is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.mcp.conftest import Served
from tests.support.paths import REPO

INSPECTOR = REPO / "tests" / "node" / "node_modules" / ".bin" / "mcp-inspector"


@pytest.fixture(scope="module")
def inspector() -> str:
    if not INSPECTOR.exists():
        reason = f"{INSPECTOR} is not installed (npm missing or its registry unreachable): run `make node`"
        if os.environ.get("BOLLARD_REQUIRE_NODE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(INSPECTOR)


def run(inspector: str, *args: str, status: int = 0) -> Any:
    """The Inspector's JSON answer; ``status`` is its exit status (5: the tool said ``isError``)."""
    done = subprocess.run(
        [inspector, "--cli", *args], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_inspector_lists_and_calls_tools_over_http(inspector: str, served: Served) -> None:
    target = [f"{served.url}/mcp", "--header", f"Authorization: Bearer {served.agent}"]
    listed = run(inspector, *target, "--method", "tools/list")
    names = [t["name"] for t in listed["tools"]]
    assert names == [t["name"] for t in served.api("GET", "/api/tools?format=mcp").json()["tools"]]
    cancel = next(t for t in listed["tools"] if t["name"] == "hotel__cancel_reservation")
    assert cancel["annotations"]["destructiveHint"] is True

    called = run(
        inspector,
        *target,
        "--method",
        "tools/call",
        "--tool-name",
        "hotel__get_reservation",
        "--tool-arg",
        "id=2",
    )
    assert called.get("isError") in (None, False)
    assert called["structuredContent"]["data"][0]["id"] == 2
    assert json.loads(called["content"][0]["text"]) == called["structuredContent"]

    invalid = run(
        inspector,
        *target,
        "--method",
        "tools/call",
        "--tool-name",
        "hotel__list_reservations",
        "--tool-arg",
        "status=lost",
        status=5,
    )
    assert invalid["isError"] is True and "params.status" in invalid["structuredContent"]["error"]["message"]


def test_the_inspector_lists_and_calls_tools_over_stdio(inspector: str, served: Served) -> None:
    command = [
        sys.executable,
        "-m",
        "bollard.platform.cli",
        "mcp",
        "--integrations",
        str(served.integrations),
    ]
    command += ["--data-dir", str(served.data_dir)]
    env = ["-e", f"BOLLARD_TOKEN={served.agent}"]
    listed = run(inspector, *env, "--method", "tools/list", "--", *command)
    assert "hotel__list_reservations" in [t["name"] for t in listed["tools"]]
    held = run(
        inspector,
        *env,
        "--method",
        "tools/call",
        "--tool-name",
        "hotel__cancel_reservation",
        "--tool-arg",
        "id=1",
        "--",
        *command,
    )
    pending = held["structuredContent"]
    assert pending["status"] == "pending" and pending["willRun"]["params"] == {"id": 1}
    approval = served.api("GET", f"/api/approvals/{pending['approvalId']}").json()
    assert approval["status"] == "pending"  # the Inspector's call decided nothing
