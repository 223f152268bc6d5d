"""An MCP session with Bollard: the official SDK's client over streamable HTTP at ``/mcp``.

Run the server first (``make run``), then, from the repository root:

    .venv/bin/python examples/mcp_session.py             # list the tools, call a read
    .venv/bin/python examples/mcp_session.py --cancel 8  # and a write: wait for its approval

It lists the tools (one per operation), calls ``hotel__list_reservations`` and prints the
result's ``structuredContent``. With ``--cancel ID`` it calls the write
``hotel__cancel_reservation``: the tool result is the pending approval (its id, what will
run, when it expires, where a person decides it), printed as one line on stdout
(``approval <id> is pending: <page>``); then the script listens for the approval's
resource (``bollard://approvals/<id>``, updated on each decision) and prints the approval
once a person decided it (``bollard approvals approve ID``, the web page or the API), or
after ``--wait`` seconds. The token defaults to ``.bollard/admin.token`` (``--token``).
Exit status 0 when the read (or the approved write) succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

FINAL = ("succeeded", "failed", "rejected", "expired")
REREAD_S = 5.0


async def read_approval(client: Client, uri: str) -> dict[str, Any]:
    read = await client.read_resource(uri)
    approval: dict[str, Any] = json.loads(getattr(read.contents[0], "text", "{}"))
    return approval


async def wait_for(client: Client, uri: str, wait_s: float) -> dict[str, Any]:
    """The approval once decided (or as it is after ``wait_s``), woken by its update notifications."""
    async with client.listen(resource_subscriptions=[uri]) as updates:
        approval = await read_approval(client, uri)  # it may have been decided before the listen
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while approval["status"] not in FINAL and loop.time() < deadline:
            try:
                # woken by the update, and re-read every few seconds all the same: with several
                # `serve --workers` on SQLite only the worker that decided sends it
                await asyncio.wait_for(updates.__anext__(), max(0.0, min(REREAD_S, deadline - loop.time())))
            except TimeoutError:
                pass
            except StopAsyncIteration:  # the server closed the stream: poll instead
                await asyncio.sleep(1)
            approval = await read_approval(client, uri)
    return approval


async def session(url: str, token: str, cancel: int | None, wait_s: float) -> int:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(120))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        tools = (await client.list_tools()).tools
        print(f"{len(tools)} tools: {', '.join(t.name for t in tools)}", file=sys.stderr)
        if cancel is None:
            result = await client.call_tool("hotel__list_reservations", {"status": "confirmed"})
            print(json.dumps(result.structured_content, indent=2))
            return 1 if result.is_error else 0
        held = await client.call_tool("hotel__cancel_reservation", {"id": cancel})
        pending = held.structured_content or {}
        if held.is_error or pending.get("status") != "pending":
            print(json.dumps(pending, indent=2))
            return 1
        print(f"approval {pending['approvalId']} is pending: {pending['howToCheck']['page']}", flush=True)
        approval = await wait_for(client, pending["howToCheck"]["resource"], wait_s)
        print(json.dumps(approval, indent=2))
        return 0 if approval["status"] == "succeeded" else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=None)
    parser.add_argument("--cancel", type=int, default=None, help="reservation id to cancel (needs approval)")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the approval")
    args = parser.parse_args()
    token = args.token or Path(".bollard/admin.token").read_text().strip()
    try:
        return asyncio.run(session(args.url, token, args.cancel, args.wait))
    except Exception as e:  # unreachable server, refused token: the SDK raises its transport's error
        print(json.dumps({"error": {"code": "mcp_error", "message": f"{type(e).__name__}: {e}"}}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
