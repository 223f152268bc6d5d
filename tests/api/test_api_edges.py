"""The HTTP API's edges a new user meets (DESIGN §6, §8): reject reasons, body limits and
body errors, the 202 body, timestamps, unknown query filters, offline docs and the
OpenAPI document, and connector log lines kept with their execution."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bollard.platform.api.limits import MAX_BODY_BYTES
from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration

SECRET = "sk-edge-SECRET-4242"

LOGGING_CONNECTOR = """
def execute(ctx):
    print("printed", ctx.params.get("text"))
    ctx.log("logged with key " + ctx.secrets.get("apiKey"))
    if ctx.params.get("many"):
        ctx.log("y" * 3000)
        for i in range(300):
            ctx.log("line %d" % i)
    if ctx.params.get("fail"):
        raise Exception("it broke")
    return {"ok": True}
"""


@pytest.fixture
def folders(integrations_dir: Path) -> Path:
    m = rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    m["operations"][0]["parametersSchema"]["properties"].update(
        {"many": {"type": "boolean"}, "fail": {"type": "boolean"}}
    )
    m["operations"].append(
        {
            "name": "cancel",
            "title": "Cancel",
            "operationType": "write",
            "parametersSchema": {"type": "object", "properties": {"id": {"type": "integer"}}},
        }
    )
    write_integration(integrations_dir, "echo", manifest=m, connector=LOGGING_CONNECTOR)
    return integrations_dir


@pytest.fixture
async def ready(folders: Path, api: Api) -> AsyncIterator[Api]:
    r = await api.put("/api/integrations/echo/credentials", json={"values": {"apiKey": SECRET}})
    assert r.status_code == 200, r.text
    yield api


async def hold(api: Api, role: str = "admin", id_: int = 7) -> dict[str, Any]:
    r = await api.post("/api/integrations/echo/operations/cancel", role=role, json={"params": {"id": id_}})
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


# --- 1. reject reason -------------------------------------------------------------


async def test_reject_reason_is_stored_and_shown(ready: Api) -> None:
    aid = (await hold(ready))["approvalId"]
    r = await ready.post(f"/api/approvals/{aid}/reject", json={"reason": "wrong guest"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.json()["reason"] == "wrong guest"
    assert (await ready.get(f"/api/approvals/{aid}")).json()["reason"] == "wrong guest"
    listed = (await ready.get("/api/approvals?status=rejected")).json()["approvals"]
    assert [(a["id"], a["reason"]) for a in listed] == [(aid, "wrong guest")]
    # without a body the reason is null; a reason over 2000 characters is refused
    other = (await hold(ready, id_=8))["approvalId"]
    r = await ready.post(f"/api/approvals/{other}/reject", json={"reason": "x" * 2001})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert (await ready.post(f"/api/approvals/{other}/reject")).json()["reason"] is None


# --- 2. chunked bodies over the limit -----------------------------------------------


async def test_chunked_body_over_the_limit_answers_413(ready: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"params": {"text": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"a" * 65536
        yield b'"}}'

    for url, method in (
        ("/api/integrations/echo/operations/echo", ready.client.post),
        ("/api/integrations/echo/credentials", ready.client.put),
    ):
        r = await method(url, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
        assert str(MAX_BODY_BYTES) in r.json()["error"]["message"]
    # the same with Content-Length
    big = b'{"params": {"text": "' + b"a" * (MAX_BODY_BYTES + 1) + b'"}}'
    r = await ready.client.post("/api/integrations/echo/operations/echo", content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    # a chunked body under the limit still works
    async def small() -> AsyncIterator[bytes]:
        yield b'{"params": '
        yield b'{"text": "hi"}}'

    r = await ready.client.post(
        "/api/integrations/echo/operations/echo",
        content=small(),
        headers={**ready.admin, "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text


# --- 3. body errors ---------------------------------------------------------------


async def test_malformed_json_names_the_position(ready: Api) -> None:
    r = await ready.client.post(
        "/api/integrations/echo/operations/echo",
        content=b'{\n  "params": {"text": "hi",}\n}',
        headers={**ready.admin, "content-type": "application/json"},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert "must be JSON" in err["message"] and "line 2 column 27 (char 28)" in err["message"]
    assert err["details"][0]["line"] == 2 and err["details"][0]["column"] == 27
    assert err["details"][0]["position"] == 28


async def test_invoke_body_without_params_wrapper_says_to_nest(ready: Api) -> None:
    r = await ready.post("/api/integrations/echo/operations/echo", json={"status": "confirmed"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert 'under "params"' in err["message"] and "'status'" in err["message"]
    assert '{"params": {"status": "confirmed"}}' in err["message"]
    # an unknown field next to params is named with the fields the body takes
    r = await ready.post("/api/integrations/echo/operations/echo", json={"params": {}, "credentialid": "x"})
    assert r.status_code == 400 and "'credentialid'" in r.json()["error"]["message"]
    assert "credentialId" in r.json()["error"]["message"]


async def test_body_and_parameter_errors_share_status_400(ready: Api) -> None:
    cases = [
        ready.put("/api/integrations/echo/credentials", json={"nope": 1}),  # body shape
        ready.put("/api/integrations/echo/credentials"),  # no body
        ready.get("/api/approvals?limit=0"),  # query parameter
        ready.post("/api/integrations/echo/operations/echo", json={"params": {"text": 5}}),  # params
    ]
    for pending in cases:
        r = await pending
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] in ("invalid_request", "invalid_params")
    r = await ready.put("/api/integrations/echo/credentials")
    assert r.json()["error"]["message"] == "a JSON request body is required"
    r = await ready.get("/api/approvals?limit=0")
    assert r.json()["error"]["message"].startswith("query.limit: ")


async def test_openapi_documents_400_codes_and_no_422(ready: Api) -> None:
    doc = (await ready.client.get("/openapi.json")).json()
    invoke = doc["paths"]["/api/integrations/{slug}/operations/{operation}"]["post"]["responses"]
    assert "invalid_request" in invoke["400"]["description"]
    assert "invalid_params" in invoke["400"]["description"]
    creds = doc["paths"]["/api/integrations/{slug}/credentials"]["put"]["responses"]
    assert "422" not in creds and "payload_too_large" in creds["413"]["description"]
    assert "limit_exceeded" in invoke["422"]["description"]  # a sandbox limit, not a body error
    assert "HTTPValidationError" not in json.dumps(doc)


# --- 4. the 202 body ----------------------------------------------------------------


async def test_held_write_answers_pending_with_the_approval(ready: Api) -> None:
    body = await hold(ready, role="agent")
    assert "success" not in body
    assert body["status"] == "pending"
    aid = body["approvalId"]
    assert body["approval"]["id"] == aid and body["approval"]["status"] == "pending"
    assert body["approval"]["params"] == {"id": 7}
    assert body["approval"]["summary"]["operation"] == "Cancel"
    assert (body["integration"], body["operation"]) == ("echo", "cancel")
    assert f"POST /api/approvals/{aid}/approve" in body["message"]
    assert (await ready.get(f"/api/approvals/{aid}", role="agent")).json() == body["approval"]


# --- 5. timestamps ------------------------------------------------------------------

TIMESTAMP_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


def check_timestamps(body: Any, where: str) -> int:
    """Every value that looks like a timestamp, or sits under a key ending in ``At``,
    parses as ISO 8601 with a UTC offset. Returns how many were checked."""
    checked = 0
    for path, value in walk(body):
        key = path.rsplit(".", 1)[-1]
        looks = isinstance(value, str) and TIMESTAMP_LIKE.match(value)
        if not looks and not (key.endswith("At") and value is not None):
            continue
        assert isinstance(value, str), f"{where}{path}: {value!r} is not an ISO 8601 string"
        parsed = datetime.fromisoformat(value)
        assert parsed.utcoffset() is not None, f"{where}{path}: {value!r} has no offset"
        assert parsed.utcoffset().total_seconds() == 0, f"{where}{path}: {value!r} is not UTC"  # type: ignore[union-attr]
        checked += 1
    return checked


async def test_every_timestamp_is_iso_utc_with_an_offset(ready: Api) -> None:
    held = await hold(ready)
    aid = held["approvalId"]
    assert (
        await ready.post("/api/integrations/echo/operations/echo", json={"params": {"text": "a"}})
    ).is_success
    decided = await ready.post(f"/api/approvals/{aid}/reject", json={"reason": "no"})
    executions = (await ready.get("/api/executions")).json()
    eid = executions["executions"][0]["id"]
    bodies = {
        "202": held,
        "reject": decided.json(),
        "integrations": (await ready.get("/api/integrations")).json(),
        "integration": (await ready.get("/api/integrations/echo")).json(),
        "approvals": (await ready.get("/api/approvals")).json(),
        "approval": (await ready.get(f"/api/approvals/{aid}")).json(),
        "executions": executions,
        "execution": (await ready.get(f"/api/executions/{eid}")).json(),
    }
    counts = {name: check_timestamps(body, name) for name, body in bodies.items()}
    assert counts["approval"] >= 3 and counts["executions"] >= 2 and counts["execution"] == 1
    assert counts["integration"] == 2  # the credential's updatedAt and serving.loadedAt


# --- 6. unknown query filters -------------------------------------------------------


async def test_unknown_query_filters_answer_400_naming_them(ready: Api) -> None:
    await ready.post("/api/integrations/echo/operations/echo", json={"params": {"fail": True}})
    for url, name in (
        ("/api/executions?success=false", "success"),
        ("/api/approvals?state=pending", "state"),
        ("/api/integrations?typ=sql", "typ"),
        ("/api/integrations/echo/operations/echo?dry=1", "dry"),
    ):
        r = await (ready.post(url, json={}) if "/operations/" in url else ready.get(url))
        assert r.status_code == 400, (url, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid_request" and f"'{name}'" in err["message"], err
        assert err["details"] == [{"path": f"query.{name}", "message": "unknown query parameter"}]
    r = await ready.get("/api/executions?success=false")
    assert "status" in r.json()["error"]["message"]  # it lists the filters that exist
    r = await ready.get("/api/executions?status=failed&limit=5")
    assert r.status_code == 200 and [e["status"] for e in r.json()["executions"]] == ["failed"]


# --- 7. docs offline, bearer scheme -------------------------------------------------


async def test_docs_are_served_offline(ready: Api) -> None:
    page = await ready.client.get("/docs")
    assert page.status_code == 200
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert srcs and all(s.startswith("/") for s in srcs), srcs  # nothing from another host
    for src in srcs:
        asset = await ready.client.get(src)
        assert asset.status_code == 200 and len(asset.content) > 100, src
    assert "http://" not in page.text.replace("http://bollard.test", "")
    assert "https://" not in page.text
    redoc = await ready.client.get("/redoc")
    assert redoc.status_code == 200 and "https://" not in redoc.text


async def test_openapi_declares_the_bearer_scheme(ready: Api) -> None:
    doc = (await ready.client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert list(schemes.values()) == [
        {"type": "http", "scheme": "bearer", "description": schemes["HTTPBearer"]["description"]}
    ]
    listing = doc["paths"]["/api/integrations"]["get"]
    assert listing["security"] == [{"HTTPBearer": []}]
    assert "401" in listing["responses"] and "/healthz" in doc["paths"]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    # today's messages for missing and bad tokens are kept
    r = await ready.client.get("/api/integrations", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer <token>" in r.json()["error"]["message"]
    r = await ready.client.get("/api/integrations", headers={"Authorization": "Bearer bol_nope"})
    assert r.json()["error"] == {"code": "unauthorized", "message": "unknown or revoked token"}
    assert r.headers["www-authenticate"] == "Bearer"


# --- 8. connector log lines kept with the execution ---------------------------------


async def test_connector_lines_are_kept_with_their_execution(ready: Api, runtime: Runtime) -> None:
    r = await ready.post(
        "/api/integrations/echo/operations/echo", role="agent", json={"params": {"text": "hi"}}
    )
    assert r.status_code == 200, r.text
    r = await ready.post(
        "/api/integrations/echo/operations/echo", json={"params": {"fail": True, "many": True}}
    )
    assert r.status_code >= 400
    listed = (await ready.get("/api/executions?integration=echo")).json()["executions"]
    failed, ok = listed[0], listed[1]
    assert ok["status"] == "succeeded" and failed["status"] == "failed"
    assert "logs" not in ok  # the list stays small

    one = await ready.get(f"/api/executions/{ok['id']}", role="agent")
    assert one.status_code == 200, one.text
    assert one.json()["logs"] == ["printed hi", "logged with key [REDACTED]"]
    assert SECRET not in one.text

    many = (await ready.get(f"/api/executions/{failed['id']}")).json()
    assert many["errorCode"] == "connector_error" and len(many["logs"]) == 200
    assert max(len(line) for line in many["logs"]) == 2000

    # an agent sees only its own calls; unknown ids answer 404
    r = await ready.get(f"/api/executions/{failed['id']}", role="agent")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_execution"
    r = await ready.get("/api/executions/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_execution"
