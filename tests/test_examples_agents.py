"""The agent examples run as their docstrings say (README "From Python and from a model"):

- ``agent_loop.py`` against a scripted OpenAI-compatible chat completions server on
  127.0.0.1 that asks for a read, then a write (the reservation the read returned), then
  answers; a person approves the write through the API while the loop waits;
- ``mcp_session.py`` (the SDK's client over streamable HTTP): a read, then a write that
  waits for its approval.

Both talk to a real ``bollard serve`` over a copy of the shipped integrations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.paths import REPO, SHIPPED
from tests.support.standin import BollardServer, ServerThread

EXAMPLES = REPO / "examples"
TIMEOUT_S = 300  # a generous ceiling for a loaded machine, not a measured threshold


class ScriptedModel:
    """``POST /v1/chat/completions`` answering from a script: turn 1 calls the read, turn 2
    the write on the first row the read returned, turn 3 answers. Keeps every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])])

    async def complete(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append({"auth": request.headers.get("authorization"), **body})
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if not tool_results:
            message = self.call("hotel__list_reservations", {"status": "confirmed"}, 1)
        elif len(tool_results) == 1:
            first = json.loads(tool_results[0]["content"])["data"][0]["id"]
            message = self.call("hotel__cancel_reservation", {"id": first}, 2)
        else:
            done = json.loads(tool_results[-1]["content"])
            message = {"role": "assistant", "content": f"Done: rowsAffected={done.get('rowsAffected')}"}
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    @staticmethod
    def call(name: str, arguments: dict[str, Any], n: int) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ],
        }


@pytest.fixture(scope="module")
def bollard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BollardServer, str]]:
    root = tmp_path_factory.mktemp("agents")
    shutil.copytree(SHIPPED, root / "integrations")
    server = BollardServer(root / "integrations", root / "data", {})
    try:
        yield server, (root / "data" / "admin.token").read_text().strip()
    finally:
        server.stop()


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("BOLLARD_", "OPENAI_"))}


def approve_when_held(url: str, token: str, proc: subprocess.Popen[str]) -> str:
    """A person approves the pending hotel approval (here: the admin token over the API)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        pending = httpx.get(
            f"{url}/api/approvals",
            params={"status": "pending", "integration": "hotel"},
            headers=headers,
            timeout=30,
        ).json()["approvals"]
        if pending:
            aid = str(pending[0]["id"])
            r = httpx.post(f"{url}/api/approvals/{aid}/approve", headers=headers, timeout=60)
            assert r.status_code == 200, r.text
            return aid
        assert time.monotonic() < deadline and proc.poll() is None, "the write was never held"
        time.sleep(0.1)


def test_agent_loop_reads_writes_and_waits_for_the_approval(
    bollard: tuple[BollardServer, str], tmp_path: Path
) -> None:
    server, token = bollard
    model = ScriptedModel()
    with ServerThread(model.app) as llm:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "agent_loop.py"),
                "Cancel the first confirmed reservation",
                "--url",
                server.url,
                "--token",
                token,
            ],
            env={
                **env(),
                "OPENAI_BASE_URL": f"{llm.url}/v1",
                "OPENAI_API_KEY": "sk-test",
                "MODEL": "scripted",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        try:
            approve_when_held(server.url, token, proc)
            out, err = proc.communicate(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "Done: rowsAffected=1"
    assert len(model.requests) == 3 and model.requests[0]["auth"] == "Bearer sk-test"
    first = model.requests[0]
    assert (
        first["model"] == "scripted"
        and first["messages"][-1]["content"] == "Cancel the first confirmed reservation"
    )
    names = {t["function"]["name"] for t in first["tools"]}
    assert {"hotel__list_reservations", "hotel__cancel_reservation"} <= names
    read_result = json.loads(model.requests[1]["messages"][-1]["content"])
    assert read_result["success"] is True and read_result["operation"] == "list_reservations"
    write_result = json.loads(model.requests[2]["messages"][-1]["content"])
    assert write_result["success"] is True and write_result["operation"] == "cancel_reservation"
    assert "pending: a person approves it" in err


def test_mcp_session_reads_then_waits_for_the_write_approval(
    bollard: tuple[BollardServer, str], tmp_path: Path
) -> None:
    server, token = bollard
    args = [sys.executable, str(EXAMPLES / "mcp_session.py"), "--url", server.url, "--token", token]
    read = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    body = json.loads(read.stdout)
    assert body["success"] is True and {r["status"] for r in body["data"]} == {"confirmed"}
    assert "hotel__cancel_reservation" in read.stderr
    rid = body["data"][-1]["id"]

    proc = subprocess.Popen(
        [*args, "--cancel", str(rid)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("approval ") and "is pending: " in first and "/approvals/" in first, first
        aid = approve_when_held(server.url, token, proc)
        assert aid in first
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    approval = json.loads(out)
    assert approval["id"] == aid and approval["status"] == "succeeded"
    assert approval["result"]["rowsAffected"] == 1


def test_mcp_session_prints_the_error_for_a_bad_token(
    bollard: tuple[BollardServer, str], tmp_path: Path
) -> None:
    server, _ = bollard
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "mcp_session.py"), "--url", server.url, "--token", "bol_nope"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and json.loads(done.stdout)["error"]["code"] == "mcp_error"
    assert "Traceback" not in done.stderr
