"""The operations route's fast path (api/fast_invoke.py) answers exactly as the route:
the same status, headers and body for the calls it takes, and every other call still
reaches the route with its body intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import Api
from tests.support.integrations import write_integration

URL = "/api/integrations/echo/operations/echo"
# the route alone answers this content type (the fast path takes exactly application/json)
ROUTE_ONLY = "application/json; charset=utf-8"


@pytest.fixture
def echo(integrations_dir: Path) -> Path:
    return write_integration(integrations_dir, "echo")


async def post(api: Api, body: bytes, content_type: str, token: str | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type, **api.agent}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await api.client.post(URL, content=body, headers=headers)


def comparable(r: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in r.headers.items() if k not in ("x-request-id", "content-length")}
    body = r.json()
    if isinstance(body, dict):
        body.pop("durationMs", None)  # the one field that differs between two runs
    return r.status_code, headers, body


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize(
    "body",
    [
        {"params": {"text": "héllo"}},
        {},
        {"params": {"text": 5}},  # invalid_params, from the execution service
        {"params": {}, "credentialId": "nope"},  # unknown_credential
        {"params": {}, "useMock": True},  # no_mock
        {"params": {}, "retries": 2, "timeoutMs": 5000},
    ],
)
async def test_the_fast_path_answers_as_the_route(api: Api, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    fast = await post(api, raw, "application/json")
    route = await post(api, raw, ROUTE_ONLY)
    assert comparable(fast) == comparable(route)


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize(
    "raw",
    [
        b'{"params": {"text": NaN}}',  # non-finite: refused by the route
        b'{"status": "confirmed"}',  # bare parameters
        b"[1, 2]",
        b"null",
        b"{not json",
        b'{"params": {}, "retries": 9}',
    ],
)
async def test_calls_the_fast_path_leaves_get_the_routes_answer(api: Api, raw: bytes) -> None:
    fast = await post(api, raw, "application/json")
    route = await post(api, raw, ROUTE_ONLY)
    assert comparable(fast) == comparable(route)
    assert fast.status_code in (200, 400)


@pytest.mark.usefixtures("echo")
async def test_unknown_and_missing_tokens_are_refused_alike(api: Api) -> None:
    raw = b'{"params": {}}'
    for token in ("bol_not-a-token", "x"):
        fast = await post(api, raw, "application/json", token=token)
        route = await post(api, raw, ROUTE_ONLY, token=token)
        assert fast.status_code == 401
        assert comparable(fast) == comparable(route)
    no_token = await api.client.post(URL, content=raw, headers={"Content-Type": "application/json"})
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "unauthorized"


@pytest.mark.usefixtures("echo")
async def test_a_query_string_still_meets_the_routes_check(api: Api) -> None:
    r = await api.client.post(URL + "?dry=1", json={"params": {}}, headers=api.agent)
    assert r.status_code == 400 and "unknown query parameter" in r.json()["error"]["message"]


async def test_requests_fastapis_telemetry_records_reach_the_route() -> None:
    # With an OpenTelemetry SDK provider installed, FastAPI's instrumentation marks the
    # request (scope["fastapi.telemetry"]); its span takes the route's name from routing,
    # so the fast path steps aside and the app gets the request, body and all.
    from bollard.platform.api.fast_invoke import FastInvoke

    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])

    body = b'{"params": {}}'
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", b"Bearer bol_x"),
        ],
        "fastapi.telemetry": object(),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_message: Any) -> None:
        raise AssertionError("the fast path answered")

    await FastInvoke(app)(scope, receive, send)
    assert seen == [body]
