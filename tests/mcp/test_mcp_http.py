"""MCP over streamable HTTP at ``/mcp`` of a real ``bollard serve``, driven by the official
SDK's client (DESIGN §9): tools and their annotations, reads, validation failures, the
three ways a held write reaches its outcome (pending envelope, URL elicitation, a task),
resources, ``list_changed`` after a folder edit, and the refusals (no or revoked token,
foreign Host or Origin)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitRequestParams, ElicitResult

from tests.mcp.conftest import Served
from tests.support.mcp import CreateTaskResult, Tasks, cancel_task, get_task, http_client


def text_json(result: Any) -> Any:
    return json.loads(result.content[0].text)


async def test_lists_every_operation_as_a_tool_with_annotations_from_the_manifest(served: Served) -> None:
    async with http_client(served.url, served.agent) as client:
        assert client.protocol_version == "2026-07-28"
        listed = await client.list_tools()
    api = served.api("GET", "/api/tools?format=mcp").json()["tools"]
    assert [t.name for t in listed.tools] == [t["name"] for t in api]
    assert listed.ttl_ms is not None and listed.cache_scope == "private"
    by_name = {t.name: t for t in listed.tools}
    cancel = by_name["hotel__cancel_reservation"].annotations
    assert cancel is not None and cancel.destructive_hint is True and cancel.read_only_hint is False
    listing = by_name["hotel__list_reservations"].annotations
    assert (
        listing is not None
        and listing.read_only_hint
        and listing.idempotent_hint
        and not listing.open_world_hint
    )
    country = by_name["countries__get_country"].annotations
    assert country is not None and country.open_world_hint is True and country.idempotent_hint is False
    assert by_name["hotel__list_reservations"].input_schema["additionalProperties"] is False
    assert "approval" in (by_name["hotel__cancel_reservation"].description or "")


async def test_a_read_answers_structured_content_and_the_same_json_as_text(served: Served) -> None:
    async with http_client(served.url, served.agent) as client:
        result = await client.call_tool("hotel__list_reservations", {"status": "confirmed"})
    assert result.is_error is False
    body = result.structured_content
    assert body["success"] is True and body["operation"] == "list_reservations"
    assert {row["status"] for row in body["data"]} == {"confirmed"}
    assert text_json(result) == body


async def test_an_invalid_argument_is_an_error_result_naming_the_parameter(served: Served) -> None:
    async with http_client(served.url, served.agent) as client:
        wrong_type = await client.call_tool("hotel__list_reservations", {"status": 5})
        unknown = await client.call_tool("hotel__list_reservations", {"stauts": "confirmed"})
        with pytest.raises(MCPError, match="no tool named 'hotel__nope'"):
            await client.call_tool("hotel__nope", {})
    assert wrong_type.is_error is True
    error = wrong_type.structured_content["error"]
    assert error["code"] == "invalid_params" and "params.status" in error["message"]
    assert unknown.is_error is True and "stauts" in unknown.structured_content["error"]["message"]


async def test_a_write_answers_the_pending_approval_and_a_person_decides_it(served: Served) -> None:
    rid = served.confirmed()[0]
    async with http_client(served.url, served.agent) as client:
        held = await client.call_tool("hotel__cancel_reservation", {"id": rid})
        assert held.is_error is False
        pending = held.structured_content
        aid = pending["approvalId"]
        assert pending["status"] == "pending" and pending["willRun"]["params"] == {"id": rid}
        assert pending["expiresAt"] and pending["howToCheck"]["resource"] == f"bollard://approvals/{aid}"
        assert pending["howToCheck"]["page"] == f"{served.url}/approvals/{aid}"
        assert text_json(held) == pending
        assert rid in served.confirmed()  # nothing ran

        async with client.listen(resource_subscriptions=[f"bollard://approvals/{aid}"]) as sub:
            r = served.api("POST", f"/api/approvals/{aid}/approve")
            assert r.status_code == 200, r.text
            event = await asyncio.wait_for(sub.__anext__(), 60)
        assert getattr(event, "uri", None) == f"bollard://approvals/{aid}"
        read = await client.read_resource(f"bollard://approvals/{aid}")
    approval = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert approval["status"] == "succeeded" and approval["result"]["rowsAffected"] == 1
    assert rid not in served.confirmed()


async def test_url_elicitation_points_at_the_approval_page_and_the_retry_gets_the_outcome(
    served: Served,
) -> None:
    rid = served.confirmed()[0]
    asked: list[str] = []

    async def elicit(ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        url = getattr(params, "url", "")
        asked.append(url)
        # the person opens the page and approves there (here: the admin token over the API)
        aid = url.rsplit("/", 1)[1]
        r = await asyncio.to_thread(served.api, "POST", f"/api/approvals/{aid}/approve")
        assert r.status_code == 200, r.text
        return ElicitResult(action="accept")

    async with http_client(served.url, served.agent, elicitation_callback=elicit) as client:
        done = await client.call_tool("hotel__cancel_reservation", {"id": rid})
    assert len(asked) == 1 and asked[0].startswith(f"{served.url}/approvals/")
    assert done.is_error is False, done.content
    assert done.structured_content["success"] is True and done.structured_content["rowsAffected"] == 1
    assert done.structured_content["approvalId"] == asked[0].rsplit("/", 1)[1]
    # the web page a person opens: signed out here, so it asks them to sign in first
    page = httpx.get(asked[0], timeout=30, follow_redirects=True)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.url.path == "/login" and len(page.history) == 1


async def test_a_clients_accept_is_never_a_persons_approval(served: Served) -> None:
    rid = served.confirmed()[0]

    async def accept(ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="accept")

    async def decline(ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="decline")

    for callback in (decline, accept):  # accept: every retry waits (1 s here), nobody decides
        async with http_client(served.url, served.agent, elicitation_callback=callback) as client:
            result = await client.call_tool("hotel__cancel_reservation", {"id": rid})
        assert result.is_error is False
        assert result.structured_content["status"] == "pending"
        aid = result.structured_content["approvalId"]
        assert served.api("GET", f"/api/approvals/{aid}").json()["status"] == "pending"
    assert rid in served.confirmed()


async def test_a_task_completes_once_a_person_approved_and_it_ran(served: Served) -> None:
    rid = served.confirmed()[0]
    async with http_client(served.url, served.agent, extensions=[Tasks()]) as client:
        created = await client.session.call_tool("hotel__cancel_reservation", {"id": rid}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult) and created.status == "working"
        assert f"/approvals/{created.task_id}" in (created.status_message or "")
        polled = await get_task(client.session, created.task_id)
        assert polled.status == "working" and polled.result is None
        assert served.api("POST", f"/api/approvals/{created.task_id}/approve").status_code == 200
        done = await get_task(client.session, created.task_id)
    assert done.status == "completed" and done.result is not None
    assert done.result["structuredContent"]["rowsAffected"] == 1 and done.result["isError"] is False
    assert rid not in served.confirmed()


async def test_the_tasks_client_waits_transparently_and_tasks_cancel_withdraws(served: Served) -> None:
    first, second = served.confirmed()[:2]

    async def approve_when_held() -> None:
        while True:
            pending = served.api("GET", "/api/approvals?status=pending&integration=hotel").json()["approvals"]
            held = [a for a in pending if a["params"] == {"id": first}]
            if held:
                assert served.api("POST", f"/api/approvals/{held[0]['id']}/approve").status_code == 200
                return
            await asyncio.sleep(0.1)

    async with http_client(served.url, served.agent, extensions=[Tasks()]) as client:
        approver = asyncio.create_task(asyncio.to_thread(lambda: asyncio.run(approve_when_held())))
        done = await client.call_tool("hotel__cancel_reservation", {"id": first})
        await approver
        assert done.is_error is False and done.structured_content["rowsAffected"] == 1

        created = await client.session.call_tool(
            "hotel__cancel_reservation", {"id": second}, allow_claimed=True
        )
        assert isinstance(created, CreateTaskResult)
        await cancel_task(client.session, created.task_id)
        cancelled = await get_task(client.session, created.task_id)
    assert cancelled.status == "cancelled"
    approval = served.api("GET", f"/api/approvals/{created.task_id}").json()
    assert approval["status"] == "rejected"  # withdrawn: it can no longer be approved
    assert served.api("POST", f"/api/approvals/{created.task_id}/approve").status_code == 409
    assert second in served.confirmed()


async def test_tasks_methods_refuse_a_client_that_did_not_declare_the_extension(served: Served) -> None:
    async with http_client(served.url, served.agent) as client:
        with pytest.raises(MCPError) as refused:
            await get_task(client.session, "00000000-0000-0000-0000-000000000000")
    assert refused.value.error.code == -32021


async def test_an_agent_sees_only_its_own_approvals_and_tasks(served: Served) -> None:
    rid = served.confirmed()[0]
    mine = served.api("POST", "/api/tokens", json={"role": "agent"}).json()["token"]
    async with http_client(served.url, mine, extensions=[Tasks()]) as client:
        created = await client.session.call_tool("hotel__cancel_reservation", {"id": rid}, allow_claimed=True)
        assert isinstance(created, CreateTaskResult)
    async with http_client(served.url, served.agent, extensions=[Tasks()]) as other:
        with pytest.raises(MCPError, match="no task"):
            await get_task(other.session, created.task_id)
        with pytest.raises(MCPError, match="Resource not found"):
            await other.read_resource(f"bollard://approvals/{created.task_id}")


async def test_resources_describe_each_integration(served: Served) -> None:
    async with http_client(served.url, served.agent) as client:
        listed = await client.list_resources()
        templates = await client.list_resource_templates()
        read = await client.read_resource("bollard://integrations/hotel")
        with pytest.raises(MCPError, match="Resource not found"):
            await client.read_resource("bollard://integrations/nope")
    assert [str(r.uri) for r in listed.resources] == [
        "bollard://integrations/countries",
        "bollard://integrations/github",
        "bollard://integrations/hotel",
    ]
    assert {t.uri_template for t in templates.resource_templates} == {
        "bollard://integrations/{slug}",
        "bollard://approvals/{id}",
    }
    hotel = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert hotel["slug"] == "hotel" and hotel["setupGuide"]
    assert {op["name"] for op in hotel["operations"]} >= {"list_reservations", "cancel_reservation"}
    assert hotel["tools"]["cancel_reservation"] == "hotel__cancel_reservation"


async def test_tools_list_changed_goes_out_when_a_folder_is_edited(served: Served) -> None:
    config = served.integrations / "countries" / "config.json"
    original = config.read_text()
    manifest = json.loads(original)
    manifest["operations"].append({**manifest["operations"][0], "name": "get_country_again"})
    try:
        async with http_client(served.url, served.agent) as client:
            async with client.listen(tools_list_changed=True) as sub:
                config.write_text(json.dumps(manifest))
                event = await asyncio.wait_for(sub.__anext__(), 60)
            assert type(event).__name__ == "ToolsListChanged"
            names = [t.name for t in (await client.list_tools()).tools]
            assert "countries__get_country_again" in names
    finally:
        config.write_text(original)


def test_no_token_gets_the_challenge_and_the_metadata_names_bollard(served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for token in (None, "bol_not-a-token", "not even the prefix"):
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(f"{served.url}/mcp", json=body, headers={**headers, **auth}, timeout=30)
        assert r.status_code == 401, r.text
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge
    url = challenge.split('resource_metadata="')[1].rstrip('"')
    assert url == f"{served.url}/.well-known/oauth-protected-resource/mcp"
    metadata = httpx.get(url, timeout=30).json()
    assert metadata["resource"] == f"{served.url}/mcp"
    assert [s.rstrip("/") for s in metadata["authorization_servers"]] == [served.url]


async def test_a_revoked_token_is_refused(served: Served) -> None:
    created = served.api("POST", "/api/tokens", json={"role": "agent"}).json()
    async with http_client(served.url, created["token"]) as client:
        assert (await client.list_tools()).tools
    assert served.api("DELETE", f"/api/tokens/{created['id']}").status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its transport's 401 as it sees fit
        async with http_client(served.url, created["token"]) as client:
            await client.list_tools()


def test_a_foreign_host_or_origin_is_refused(served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
    headers = {
        "Authorization": f"Bearer {served.agent}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    rebound = httpx.post(
        f"{served.url}/mcp", json=body, headers={**headers, "Host": "evil.example"}, timeout=30
    )
    assert rebound.status_code == 421
    cross = httpx.post(
        f"{served.url}/mcp", json=body, headers={**headers, "Origin": "http://evil.example"}, timeout=30
    )
    assert cross.status_code == 403
