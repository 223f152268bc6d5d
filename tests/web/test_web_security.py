"""The web page's security rules without a browser (DESIGN §13): headers, cookie flags,
CSRF refusals, agents refused server-side, secrets never rendered, sanitised guides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.runtime import Runtime
from bollard.platform.web.session import SESSION_COOKIE
from tests.support.api import BASE_URL
from tests.support.integrations import rest_manifest, write_integration
from tests.support.web import csrf_of, web_login

SECRET = "sekret-value-4711-do-not-show"
WRITE_CONNECTOR = """
def execute(ctx):
    return {"did": ctx.operation, "params": ctx.params}
"""


@pytest.fixture
async def site(runtime: Runtime, integrations_dir: Path) -> AsyncIterator[dict]:
    m = rest_manifest(
        authMethod="api_key",
        secretBindings=["apiKey"],
        setupGuide="# Setup\n\n<script>alert(1)</script>\n\n[bad](javascript:alert(1)) "
        '[good](https://example.com) <img src=x onerror="alert(2)">',
        operations=[
            {
                "name": "echo",
                "parametersSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
            {"name": "change", "operationType": "write", "parametersSchema": {"type": "object"}},
        ],
    )
    write_integration(integrations_dir, "svc", manifest=m, connector=WRITE_CONNECTOR)
    write_integration(
        integrations_dir,
        "db",
        manifest={
            "title": "Notes DB",
            "type": "sql",
            "authMethod": "none",
            "sqlConnectionConfig": {"engine": "sqlite", "readOnly": False},
            "sqlOperations": [
                {
                    "name": "wipe",
                    "operationType": "write",
                    "query": "DELETE FROM notes WHERE id = @id",
                    "parametersSchema": {
                        "type": "object",
                        "properties": {"id": {"type": "integer"}},
                        "required": ["id"],
                    },
                },
            ],
        },  # fmt: skip
        connector=None,
    )
    runtime.registry.load_all()
    app = create_app(runtime=runtime)
    admin = await tokens.create_token(runtime.db, "admin", "web admin")
    agent = await tokens.create_token(runtime.db, "agent", "web agent")
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as a,
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as b,
    ):
        yield {"admin": a, "agent": b, "admin_token": admin, "agent_token": agent, "rt": runtime}


def assert_security_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_headers_on_pages_static_files_and_errors(site: dict) -> None:
    c = site["admin"]
    assert_security_headers(await c.get("/login"))
    assert_security_headers(await c.get("/static/vendor/htmx/htmx.min.js"))
    redirect = await c.get("/")
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login"
    assert_security_headers(redirect)
    await web_login(c, site["admin_token"])
    for path in ("/", "/integrations/svc", "/add", "/approvals", "/executions", "/tokens"):
        r = await c.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert_security_headers(r)
        assert "<script>" not in r.text.replace("<script src=", "")  # no inline script at all
    missing = await c.get("/integrations/nope")
    assert missing.status_code == 404 and "unknown_integration" in missing.text
    assert_security_headers(missing)


async def test_icons_keep_their_own_sandboxing_csp(site: dict, integrations_dir: Path) -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect width="1" height="1"/></svg>'
    (integrations_dir / "svc" / "icon.svg").write_text(svg)
    site["rt"].registry.load_all()
    c = site["admin"]
    assert (await c.get("/integrations/svc/icon")).status_code == 303  # a session first
    await web_login(c, site["admin_token"])
    assert '<img class="icon" src="/integrations/svc/icon" alt="">' in (await c.get("/")).text
    r = await c.get("/integrations/svc/icon")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


async def test_session_cookie_flags_and_login_refusals(site: dict) -> None:
    c = site["admin"]
    page = await c.get("/login")
    csrf = csrf_of(page.text)
    bad = await c.post("/login", data={"csrf": csrf, "token": "bol_not-a-token"})
    assert bad.status_code == 401 and "unknown or revoked token" in bad.text
    assert SESSION_COOKIE not in bad.headers.get("set-cookie", "")
    r = await c.post("/login", data={"csrf": csrf_of(bad.text), "token": site["admin_token"]})
    assert r.status_code == 303
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE + "="))
    flags = {p.strip().split("=")[0].lower(): p.strip() for p in cookie.split(";")}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/" and int(flags["max-age"].split("=")[1]) <= 8 * 3600
    assert site["admin_token"] not in cookie  # the cookie names the token's id, never the token


async def test_login_without_its_csrf_token_is_refused(site: dict) -> None:
    fresh = site["agent"]
    r = await fresh.post("/login", data={"token": site["admin_token"]})
    assert r.status_code == 403 and SESSION_COOKIE not in r.headers.get("set-cookie", "")
    await fresh.get("/login")  # a login cookie, but another form's token
    r = await fresh.post("/login", data={"csrf": "forged", "token": site["admin_token"]})
    assert r.status_code == 403


async def test_forms_without_the_session_csrf_token_are_refused(site: dict) -> None:
    c = site["admin"]
    csrf = await web_login(c, site["admin_token"])
    before = len(await tokens.list_tokens(site["rt"].db))
    assert (await c.post("/tokens", data={"name": "x"})).status_code == 403
    assert (await c.post("/tokens", data={"name": "x", "csrf": csrf[:-2] + "xx"})).status_code == 403
    assert (await c.post("/tokens", data={"name": "x"}, headers={"X-CSRF-Token": "nope"})).status_code == 403
    cross = await c.post(
        "/tokens", data={"name": "x", "csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert len(await tokens.list_tokens(site["rt"].db)) == before  # nothing was created
    ok = await c.post("/tokens", data={"name": "made", "csrf": csrf})
    assert ok.status_code == 201 and "bol_" in ok.text  # shown once
    htmx = await c.post(
        "/tokens", data={"name": "via htmx"}, headers={"X-CSRF-Token": csrf, "HX-Request": "true"}
    )
    assert htmx.status_code == 201
    assert (await c.post("/logout")).status_code == 403  # no one logs you out from elsewhere


async def test_tampered_expired_or_revoked_sessions_are_logged_out(site: dict) -> None:
    c = site["admin"]
    await web_login(c, site["agent_token"])
    value = c.cookies[SESSION_COOKIE]
    c.cookies.set(SESSION_COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert (await c.get("/approvals")).status_code == 303
    c.cookies.set(SESSION_COOKIE, value)
    assert (await c.get("/approvals")).status_code == 200
    agent_id = next(t.id for t in await tokens.list_tokens(site["rt"].db) if t.name == "web agent")
    await site["rt"].tokens.revoke(agent_id)
    r = await c.get("/approvals")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/approvals"


async def test_next_is_a_local_path_only(site: dict) -> None:
    c = site["admin"]
    page = await c.get("/login")
    r = await c.post(
        "/login", data={"csrf": csrf_of(page.text), "token": site["admin_token"], "next": "//evil.example/x"}
    )
    assert r.headers["location"] == "/"


async def test_agents_are_refused_admin_actions_server_side(site: dict) -> None:
    admin, agent = site["admin"], site["agent"]
    admin_csrf = await web_login(admin, site["admin_token"])
    agent_csrf = await web_login(agent, site["agent_token"])
    await admin.post(
        "/integrations/svc/credentials",
        data={"csrf": admin_csrf, "credential_id": "default", "c.apiKey": SECRET, "action": "save"},
    )
    # the agent requests a write: held for approval
    held = await agent.post(
        "/integrations/svc/operations/change", data={"csrf": agent_csrf, "params_json": "{}"}
    )
    assert held.status_code == 202 and "pending approval" in held.text
    approval_id = (await site["rt"].approvals.list(status="pending"))[0][0]["id"]
    card = await agent.get(f"/approvals/{approval_id}")
    assert card.status_code == 200 and "Approve and run" not in card.text  # hidden …
    refused = await agent.post(f"/approvals/{approval_id}/approve", data={"csrf": agent_csrf})
    assert refused.status_code == 403  # … and refused
    assert (
        await agent.post(f"/approvals/{approval_id}/reject", data={"csrf": agent_csrf})
    ).status_code == 403
    assert (await site["rt"].approvals.get(approval_id))["status"] == "pending"
    for path in ("/add", "/executions", "/tokens"):
        assert (await agent.get(path)).status_code == 403, path
    manage = (await agent.get("/integrations/svc")).text  # what GET /api/integrations/svc shows
    assert (
        "Only an admin token may change or test credentials" in manage
        and 'id="credentials-form"' not in manage
    )
    assert 'href="/tokens"' not in manage and 'href="/executions"' not in manage and "Uninstall" not in manage
    for path, data in (
        ("/tokens", {"name": "x"}),
        ("/integrations/svc/credentials", {"c.apiKey": "other", "action": "save"}),
        ("/integrations/svc/credentials", {"action": "test"}),
        ("/integrations/svc/uninstall", {"confirm": "svc"}),
    ):
        assert (await agent.post(path, data={"csrf": agent_csrf, **data})).status_code == 403, path
    assert (await site["rt"].credentials.get("svc", "default")) == {"apiKey": SECRET}
    # the admin approves it from the same card
    done = await admin.post(f"/approvals/{approval_id}/approve", data={"csrf": admin_csrf})
    assert done.status_code == 303
    assert (await site["rt"].approvals.get(approval_id))["status"] == "succeeded"


async def test_secrets_are_never_rendered(site: dict) -> None:
    c = site["admin"]
    csrf = await web_login(c, site["admin_token"])
    saved = await c.post(
        "/integrations/svc/credentials",
        data={"csrf": csrf, "credential_id": "default", "c.apiKey": SECRET, "action": "save"},
        headers={"HX-Request": "true"},
    )
    assert saved.status_code == 200 and "saved: apiKey" in saved.text and SECRET not in saved.text
    tested = await c.post(
        "/integrations/svc/credentials", data={"csrf": csrf, "c.apiKey": SECRET, "action": "test"}
    )
    assert "defines no test_connection" in tested.text and SECRET not in tested.text
    await c.post("/integrations/svc/operations/echo", data={"csrf": csrf, "p.text": "hello"})
    for path in ("/", "/integrations/svc", "/executions", "/approvals"):
        page = await c.get(path)
        assert SECRET not in page.text, path
    manage = (await c.get("/integrations/svc")).text
    assert 'type="password"' in manage and "set: leave empty to keep it" in manage
    log = await site["rt"].execution_log.query(
        __import__("bollard.platform.execution_log", fromlist=["x"]).ExecutionFilter()
    )
    detail = await c.get(f"/executions/{log[0][0]['id']}")
    assert detail.status_code == 200 and SECRET not in detail.text


async def test_setup_guide_is_sanitised(site: dict) -> None:
    c = site["admin"]
    await web_login(c, site["admin_token"])
    html = (await c.get("/integrations/svc")).text
    assert "<h1>Setup</h1>" in html
    assert "&lt;script&gt;alert(1)" in html  # raw HTML is shown as text, never run
    assert html.count("<script") == 2  # htmx and the page's own script, nothing from the guide
    assert 'href="javascript:' not in html and "<img src=x" not in html
    assert 'href="https://example.com"' in html and "noopener" in html


async def test_approval_card_shows_the_sql_that_will_run(site: dict, data_dir: Path) -> None:
    c = site["admin"]
    csrf = await web_login(c, site["admin_token"])
    db = data_dir / "notes.db"
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    await site["rt"].credentials.put("db", "default", {"database": str(db)})
    r = await c.post("/integrations/db/operations/wipe", data={"csrf": csrf, "p.id": "7"})
    assert r.status_code in (202, 400), r.text[:500]
    if r.status_code == 400:
        pytest.skip(f"the sqlite path is not allowed here: {r.text[:200]}")
    page = (await c.get("/approvals")).text
    assert "DELETE FROM notes WHERE id = @id" in page and "&#34;id&#34;: 7" in page or '"id": 7' in page


async def test_run_form_converts_fields_and_reports_invalid_params(site: dict) -> None:
    c = site["admin"]
    csrf = await web_login(c, site["admin_token"])
    await c.post("/integrations/svc/credentials", data={"csrf": csrf, "c.apiKey": SECRET, "action": "save"})
    ok = await c.post("/integrations/svc/operations/echo", data={"csrf": csrf, "p.text": "hi there"})
    assert ok.status_code == 200 and "hi there" in ok.text and "success" in ok.text
    bad = await c.post("/integrations/svc/operations/echo", data={"csrf": csrf, "params_json": "{nope"})
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    wrong = await c.post(
        "/integrations/svc/operations/echo", data={"csrf": csrf, "params_json": '{"text": 5}'}
    )
    assert wrong.status_code == 400 and "invalid_params" in wrong.text
