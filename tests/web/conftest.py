"""Fixtures of the browser tests: a stand-in upstream, ``bollard serve`` over a folder of
test integrations, and one chromium (playwright) for the whole session."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, skip_without_browser
from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import BollardServer, ServerThread
from tests.support.web import GOOD, Site

ITEMS = [{"id": 1, "title": "first"}, {"id": 2, "title": "second"}, {"id": 3, "title": "third"}]


async def user(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {GOOD}":
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    return JSONResponse({"login": "octo"})


async def items(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {GOOD}":
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    if request.method == "POST":
        body = await request.json()
        return JSONResponse({"id": 99, "title": body.get("title"), "created": True}, status_code=201)
    limit = int(request.query_params.get("limit", "10"))
    return JSONResponse(ITEMS[:limit])


def connector(base: str) -> str:
    return f'''
BASE = "{base}"

def auth_headers(ctx):
    return {{"Authorization": "Bearer " + ctx.secrets.get("accessToken")}}

def test_connection(ctx):
    r = ctx.http.get(BASE + "/user", headers=auth_headers(ctx))
    if r.status == 401:
        raise Exception("The service rejected the token. Create a new one.")
    return {{"message": "connected as " + r.body["login"]}}

def execute(ctx):
    if ctx.operation == "list_items":
        print("listing items")
        limit = ctx.params.get("limit", 10)
        r = ctx.http.get(BASE + "/items", headers=auth_headers(ctx), params={{"limit": limit}})
        return r.body
    if ctx.operation == "create_item":
        r = ctx.http.post(BASE + "/items", headers=auth_headers(ctx), json={{"title": ctx.params["title"]}})
        return r.body
    return {{"filter": ctx.params}}
'''


def svc_manifest(base: str) -> dict[str, Any]:
    return rest_manifest(
        title="Stand-in service",
        description="Items of the local stand-in upstream",
        authMethod="bearer_token",
        secretBindings=["accessToken"],
        allowedHosts=[base],
        setupGuide="## Connect\n\n1. Create a token.\n2. Paste it below and press **Test connection**.",
        operations=[
            {
                "name": "list_items",
                "title": "List items",
                "description": "The first items",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"limit": {"type": "integer", "minimum": 1, "description": "how many"}},
                },
            },
            {
                "name": "create_item",
                "title": "Create an item",
                "operationType": "write",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"title": {"type": "string"}},
                    "required": ["title"],
                },
            },
            {
                "name": "search",
                "title": "Search",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"filter": {"type": "object", "properties": {"q": {"type": "string"}}}},
                },
            },
        ],
    )


@pytest.fixture(scope="module")
def standin() -> Iterator[ServerThread]:
    with ServerThread(
        Starlette(routes=[Route("/user", user), Route("/items", items, methods=["GET", "POST"])])
    ) as s:
        yield s


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, standin: ServerThread) -> Iterator[Site]:
    skip_without_browser()
    tmp = tmp_path_factory.mktemp("web")
    integrations = tmp / "integrations"
    write_integration(
        integrations, "svc", manifest=svc_manifest(standin.url), connector=connector(standin.url)
    )
    write_integration(integrations, "fragile", manifest=rest_manifest(title="Fragile"))
    server = BollardServer(
        integrations,
        tmp / "data",
        env={
            "BOLLARD_SECRET_KEY": "web-test-secret-key",
            "BOLLARD_ALLOW_PRIVATE_EGRESS": "true",  # the stand-in upstream is on 127.0.0.1
            "BOLLARD_RELOAD_DEBOUNCE_MS": "50",
        },
    )
    token_file = tmp / "data" / "admin.token"
    try:
        deadline = time.monotonic() + 30  # written just before uvicorn starts listening
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert token_file.exists(), f"no admin token; the server said: {server.log.read_text()[-2000:]}"
        yield Site(server.url, token_file.read_text().strip(), integrations, tmp)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[Any]:
    """One chromium for the module (a fresh profile); its pages share its cookies. Module
    scope, not session: playwright's sync API holds an event loop on this thread while it
    runs, which the asyncio tests after this module must not find."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            base_url=site.url,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A tab; fails the test on any console error (a CSP violation shows there)."""
    tab = browser_context.new_page()
    errors: list[str] = []
    # a refused request (a 4xx the test provokes) is logged as "Failed to load resource";
    # anything else, such as a Content-Security-Policy refusal, fails the test
    tab.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    tab.close()
    assert not errors, f"console errors: {json.dumps(errors)[:2000]}"
