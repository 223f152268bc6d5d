"""MCP over stdio: ``bollard mcp`` started by the official SDK's client as a subprocess, over
the same folders and data directory as a running ``bollard serve`` (where a person approves
through the API)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from mcp_types import ToolListChangedNotification

from tests.mcp.conftest import Served
from tests.support.mcp import CreateTaskResult, Tasks, get_task, stdio_client


async def test_lists_reads_and_validates_over_stdio(served: Served) -> None:
    async with stdio_client(served.integrations, served.data_dir, served.agent) as client:
        assert client.protocol_version == "2026-07-28"
        names = [t.name for t in (await client.list_tools()).tools]
        read = await client.call_tool("hotel__get_reservation", {"id": 1})
        invalid = await client.call_tool("hotel__get_reservation", {"id": "one"})
    assert names == [t["name"] for t in served.api("GET", "/api/tools?format=mcp").json()["tools"]]
    assert read.is_error is False and read.structured_content["data"][0]["id"] == 1
    assert json.loads(read.content[0].text) == read.structured_content  # type: ignore[union-attr]
    assert invalid.is_error is True and "params.id" in invalid.structured_content["error"]["message"]


async def test_a_write_waits_for_a_person_then_the_outcome_over_stdio(served: Served) -> None:
    first, second = served.confirmed()[:2]
    async with stdio_client(
        served.integrations, served.data_dir, served.agent, extensions=[Tasks()]
    ) as client:
        # with the Tasks extension: a task that completes once a person approved
        held = await client.session.call_tool("hotel__cancel_reservation", {"id": first}, allow_claimed=True)
        assert isinstance(held, CreateTaskResult)
        assert served.api("POST", f"/api/approvals/{held.task_id}/approve").status_code == 200
        done = await get_task(client.session, held.task_id)
        assert done.status == "completed" and done.result is not None
        assert done.result["structuredContent"]["rowsAffected"] == 1
    async with stdio_client(served.integrations, served.data_dir, served.agent) as client:
        # without it: the pending envelope, then the approval's resource once decided
        pending = await client.call_tool("hotel__cancel_reservation", {"id": second})
        aid = pending.structured_content["approvalId"]
        assert pending.structured_content["status"] == "pending"
        assert served.api("POST", f"/api/approvals/{aid}/approve").status_code == 200
        read = await client.read_resource(f"bollard://approvals/{aid}")
    assert json.loads(read.contents[0].text)["status"] == "succeeded"  # type: ignore[union-attr]
    assert first not in served.confirmed() and second not in served.confirmed()


async def test_tools_list_changed_after_a_folder_edit_over_stdio(served: Served) -> None:
    config = served.integrations / "countries" / "config.json"
    original = config.read_text()
    manifest = json.loads(original)
    manifest["operations"].append({**manifest["operations"][0], "name": "get_country_stdio"})
    try:
        async with stdio_client(served.integrations, served.data_dir, served.agent) as client:
            async with client.listen(tools_list_changed=True) as sub:
                config.write_text(json.dumps(manifest))
                event = await asyncio.wait_for(sub.__anext__(), 60)
            assert type(event).__name__ == "ToolsListChanged"
            assert "countries__get_country_stdio" in [t.name for t in (await client.list_tools()).tools]
    finally:
        config.write_text(original)


def test_bollard_mcp_refuses_a_missing_or_unknown_token(served: Served) -> None:
    base = [sys.executable, "-m", "bollard.platform.cli", "mcp", "--integrations", str(served.integrations)]
    base += ["--data-dir", str(served.data_dir)]
    env = {"PATH": "/usr/bin:/bin"}
    missing = subprocess.run(
        base, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert missing.returncode == 1 and "needs a token" in missing.stderr
    unknown = subprocess.run(
        [*base, "--token", "bol_nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert unknown.returncode == 1 and "unknown or revoked token" in unknown.stderr
    assert unknown.stdout == ""  # stdout carries only the protocol


async def test_a_client_on_the_handshake_era_gets_list_changed_on_its_connection(served: Served) -> None:
    config = served.integrations / "countries" / "config.json"
    original = config.read_text()
    manifest = json.loads(original)
    manifest["operations"].append({**manifest["operations"][0], "name": "get_country_legacy"})
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            changed.set()

    try:
        async with stdio_client(
            served.integrations, served.data_dir, served.agent, mode="legacy", message_handler=on_message
        ) as client:
            assert client.protocol_version != "2026-07-28"
            caps = client.server_capabilities
            assert caps.tools is not None and caps.tools.list_changed is True
            await client.list_tools()
            config.write_text(json.dumps(manifest))
            await asyncio.wait_for(changed.wait(), 60)
            assert "countries__get_country_legacy" in [t.name for t in (await client.list_tools()).tools]
    finally:
        config.write_text(original)


async def test_a_result_over_the_model_cap_is_cut_and_one_that_fits_is_whole(served: Served) -> None:
    # the text block is the structured content's compact JSON either way (results.py)
    cap = 1500
    env = {"BOLLARD_MAX_MODEL_RESULT_CHARS": str(cap)}
    async with stdio_client(served.integrations, served.data_dir, served.agent, env) as client:
        small = await client.call_tool("hotel__get_reservation", {"id": 1})
        large = await client.call_tool("hotel__list_reservations", {})
    for result in (small, large):
        text = result.content[0].text  # type: ignore[union-attr]
        assert text == json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
        assert len(text) <= cap
    # whole: the envelope as the API answers it (its own "truncated" is the SQL row cap's)
    assert small.structured_content["success"] is True and "truncation" not in small.structured_content
    assert small.structured_content["data"][0]["id"] == 1
    assert large.structured_content["truncated"] is True
    assert large.structured_content["truncation"]["originalChars"] > cap
