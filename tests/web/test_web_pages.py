"""Web page behaviour without a browser: OAuth2 connect and re-authorise states, several
credential ids, the execution log's caller filter and paging (DESIGN §13)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.runtime import Runtime
from bollard.platform.web.executions import PAGE_SIZE
from tests.support.api import BASE_URL
from tests.support.integrations import SIMPLE_CONNECTOR, rest_manifest, write_integration
from tests.support.web import web_login

AUTHORIZE = "https://provider.example/oauth/authorize"


@pytest.fixture
async def client(runtime: Runtime, integrations_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    write_integration(
        integrations_dir,
        "oauthy",
        rest_manifest(
            title="OAuthy",
            authMethod="oauth2",
            secretBindings=["accessToken"],
            allowedHosts=["provider.example"],
            oauth2Config={"authorizationUrl": AUTHORIZE, "tokenUrl": "https://provider.example/oauth/token"},
        ),
    )
    write_integration(
        integrations_dir, "keyed", rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    )
    runtime.registry.load_all()
    admin = await tokens.create_token(runtime.db, "admin", "web pages admin")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime=runtime)), base_url=BASE_URL
    ) as c:
        yield c, await web_login(c, admin)


async def test_oauth2_connect_and_reauthorise_states(
    client: tuple[httpx.AsyncClient, str], runtime: Runtime
) -> None:
    c, csrf = client
    page = (await c.get("/integrations/oauthy")).text
    assert "not connected" in page and ">Connect</button>" in page
    assert 'id="c-clientId"' in page and 'id="c-clientSecret"' in page and 'id="c-accessToken"' not in page
    await runtime.credentials.put("oauthy", "default", {"clientId": "cid", "clientSecret": "csecret"})
    r = await c.post("/integrations/oauthy/oauth2/connect", data={"csrf": csrf, "credential_id": "default"})
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == AUTHORIZE
    query = parse_qs(target.query)
    assert query["client_id"] == ["cid"] and query["code_challenge_method"] == ["S256"] and query["state"]
    await runtime.credentials.put("oauthy", "default", {"accessToken": "at-1"})
    assert "Re-authorise" in (await c.get("/integrations/oauthy")).text
    await runtime.credentials.put("oauthy", "default", {"accessToken": "", "reauthorize": "invalid_grant"})
    assert "revoked the grant" in (await c.get("/integrations/oauthy")).text


async def test_several_credential_ids(client: tuple[httpx.AsyncClient, str], runtime: Runtime) -> None:
    c, csrf = client
    for cid, key in (("default", "key-a"), ("tenant-b", "key-b")):
        r = await c.post(
            "/integrations/keyed/credentials",
            data={"csrf": csrf, "credential_id": cid, "c.apiKey": key, "action": "save"},
        )
        assert r.status_code == 200 and "saved: apiKey" in r.text
    page = (await c.get("/integrations/keyed?credential=tenant-b")).text
    assert '<option value="tenant-b" selected>' in page and '<option value="default" >' in page
    assert 'name="credential_id"' in page and "key-b" not in page and "key-a" not in page
    assert await runtime.credentials.get("keyed", "tenant-b") == {"apiKey": "key-b"}
    r = await c.post(
        "/integrations/keyed/credentials",
        data={"csrf": csrf, "credential_id": "tenant-b", "action": "delete"},
    )
    assert "removed &#39;tenant-b&#39;" in r.text
    assert await runtime.credentials.get("keyed", "tenant-b") is None


async def test_execution_log_filters_by_caller_and_pages(
    client: tuple[httpx.AsyncClient, str], runtime: Runtime
) -> None:
    c, csrf = client
    for i in range(PAGE_SIZE + 2):
        await c.post("/integrations/keyed/operations/echo", data={"csrf": csrf, "p.text": f"t{i}"})
    first = (await c.get("/executions?caller=ui")).text
    assert f"{PAGE_SIZE + 2} call(s), page 1 of 2" in first and 'rel="next"' in first
    second = (await c.get("/executions?caller=ui&page=2")).text
    assert second.count("<tr>") == 2 + 1 and 'rel="prev"' in second  # two rows and the header
    assert "0 call(s)" in (await c.get("/executions?caller=mcp")).text
    assert "0 call(s)" in (await c.get("/executions?caller=ui&until=2000-01-01T00:00")).text
    bad = await c.get("/executions?since=yesterday")
    assert bad.status_code == 400 and "since: not a date and time" in bad.text


async def test_event_stream_sends_registry_changes_and_ends_when_the_server_closes(
    client: tuple[httpx.AsyncClient, str], runtime: Runtime
) -> None:
    c, _ = client
    assert (await c.get("/events", headers={"Cookie": "bollard_session=forged"})).status_code == 303
    streaming = asyncio.create_task(c.get("/events"))
    await asyncio.sleep(0.2)
    write_integration(  # a changed folder, reloaded as the watcher does
        runtime.registry.root,
        "keyed",
        rest_manifest(authMethod="api_key", secretBindings=["apiKey"], version=2),
    )
    runtime.registry.reload("keyed")
    await asyncio.sleep(0.2)
    runtime.closing.set()  # what bollard serve does when shutdown begins
    r = await asyncio.wait_for(streaming, 10)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.startswith("retry: 2000") and 'event: registry\ndata: {"slug": "keyed"' in r.text


async def test_add_from_files_refusals_and_uninstall(
    client: tuple[httpx.AsyncClient, str], runtime: Runtime, integrations_dir: Path
) -> None:
    c, csrf = client
    manifest = json.dumps(rest_manifest(title="From files"))
    files = [
        ("files", ("config.json", manifest, "application/json")),
        ("files", ("connector.py", SIMPLE_CONNECTOR, "text/x-python")),
    ]
    before = sorted(p.name for p in integrations_dir.iterdir())
    preview = await c.post("/add", data={"csrf": csrf, "slug": "fromfiles", "action": "preview"}, files=files)
    assert (
        preview.status_code == 200
        and "Preview: From files" in preview.text
        and ">Install</button>" in preview.text
    )
    assert sorted(p.name for p in integrations_dir.iterdir()) == before  # a preview writes nothing
    bad = [
        ("files", ("config.json", manifest, "application/json")),
        ("files", ("../evil.py", "x", "text/plain")),
    ]
    refused = await c.post("/add", data={"csrf": csrf, "slug": "fromfiles", "action": "install"}, files=bad)
    assert (
        refused.status_code == 400 and "evil.py" in refused.text and "The package was refused" in refused.text
    )
    assert sorted(p.name for p in integrations_dir.iterdir()) == before
    done = await c.post("/add", data={"csrf": csrf, "slug": "fromfiles", "action": "install"}, files=files)
    assert done.status_code == 303 and done.headers["location"] == "/integrations/fromfiles"
    assert runtime.registry.get("fromfiles") is not None
    wrong = await c.post("/integrations/fromfiles/uninstall", data={"csrf": csrf, "confirm": "nope"})
    assert wrong.status_code == 400 and "type the slug &#39;fromfiles&#39;" in wrong.text
    assert (integrations_dir / "fromfiles").exists()
    gone = await c.post("/integrations/fromfiles/uninstall", data={"csrf": csrf, "confirm": "fromfiles"})
    assert gone.status_code == 303 and not (integrations_dir / "fromfiles").exists()


async def test_approval_cards_name_who_asked(client: tuple[httpx.AsyncClient, str], runtime: Runtime) -> None:
    c, csrf = client
    write_integration(
        runtime.registry.root,
        "writer",
        rest_manifest(
            operations=[
                {
                    "name": "change",
                    "operationType": "write",
                    "parametersSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
                }
            ]
        ),
    )
    runtime.registry.reload("writer")
    held = await c.post(
        "/integrations/writer/operations/change", data={"csrf": csrf, "params_json": '{"n": 1}'}
    )
    assert held.status_code == 202, held.text[-1500:]
    page = (await c.get("/approvals")).text
    assert "web pages admin" in page and "Approve and run" in page and "&#34;n&#34;: 1" in page
