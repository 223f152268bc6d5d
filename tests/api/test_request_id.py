"""One request id per request (platform/request_id.py, api/request_id.py): a sane incoming
``X-Request-Id`` is kept, anything else replaced; it is on every response (errors
included), on the log records written while the request runs, and in the execution record
(``GET /api/executions``, filterable by ``requestId``)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bollard.platform import request_id
from bollard.platform.request_id import RequestIdFilter
from tests.support.api import Api
from tests.support.integrations import write_integration

HEX32 = re.compile(r"[0-9a-f]{32}")

CONNECTOR = """
def execute(ctx):
    print("connector line")
    return {"ok": True}
"""


@pytest.fixture
def echo(integrations_dir: Path) -> Path:
    return write_integration(integrations_dir, "echo", connector=CONNECTOR)


async def test_a_request_without_an_id_gets_a_new_one(api: Api) -> None:
    a = await api.get("/api/integrations")
    b = await api.get("/api/integrations")
    assert HEX32.fullmatch(a.headers["x-request-id"]) and HEX32.fullmatch(b.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


@pytest.mark.parametrize("sane", ["abc", "req-1.2_3:4", "A" * 64, "0f8fad5b-d9cb-469f-a165-70867728950e"])
async def test_a_sane_incoming_id_is_kept(api: Api, sane: str) -> None:
    r = await api.client.get("/healthz", headers={"X-Request-Id": sane})
    assert r.headers["x-request-id"] == sane
    assert r.headers.get_list("x-request-id") == [sane]  # one header, not two


@pytest.mark.parametrize(
    "insane",
    ["", "A" * 65, "has space", "semi;colon", "new\tline", 'quote"d', "<script>", "%0d%0aSet-Cookie:x", "é"],
)
async def test_an_insane_incoming_id_is_replaced(api: Api, insane: str) -> None:
    raw = insane.encode("utf-8")
    r = await api.client.get("/healthz", headers=[(b"X-Request-Id", raw)])
    assert HEX32.fullmatch(r.headers["x-request-id"]), r.headers["x-request-id"]


async def test_errors_carry_the_id_too(api: Api) -> None:
    for r in (
        await api.client.get("/api/integrations", headers={"X-Request-Id": "e-401"}),
        await api.client.get("/api/nothing-here", headers={"X-Request-Id": "e-401"}),
        await api.client.post(
            "/api/integrations/nope/operations/x",
            json={"params": {}},
            headers={**api.admin, "X-Request-Id": "e-401"},
        ),
    ):
        assert r.status_code in (401, 404) and r.headers["x-request-id"] == "e-401"


async def test_the_execution_record_and_the_logs_carry_it(
    echo: Path, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO, logger="bollard.connector")
    headers = {**api.agent, "X-Request-Id": "call-77"}
    r = await api.client.post("/api/integrations/echo/operations/echo", json={"params": {}}, headers=headers)
    assert r.status_code == 200 and r.headers["x-request-id"] == "call-77"
    other = await api.post("/api/integrations/echo/operations/echo", json={"params": {}})
    listed = (await api.get("/api/executions?requestId=call-77")).json()
    assert listed["total"] == 1
    (record,) = listed["executions"]
    assert record["requestId"] == "call-77"
    detail = (await api.get(f"/api/executions/{record['id']}")).json()
    assert detail["requestId"] == "call-77"
    all_records = (await api.get("/api/executions")).json()["executions"]
    assert {e["requestId"] for e in all_records} == {"call-77", other.headers["x-request-id"]}
    lines = [rec for rec in caplog.records if rec.name == "bollard.connector"]
    assert [getattr(rec, "request_id", None) for rec in lines] == ["call-77", other.headers["x-request-id"]]


def test_outside_a_request_there_is_none() -> None:
    assert request_id.current() is None
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    RequestIdFilter().filter(record)
    assert record.request_id == "-"  # type: ignore[attr-defined]
    assert request_id.accept(None) != request_id.accept(None)


async def test_calls_from_the_runtime_have_no_request_id(echo: Path, api: Api) -> None:
    from bollard.platform.invocation import Invocation

    runtime = api.client._transport.app.state.runtime  # type: ignore[attr-defined]
    outcome = await runtime.execution.invoke(Invocation("echo", "echo", {}, caller="cli"))
    assert outcome.status == 200
    records = (await api.get("/api/executions")).json()["executions"]
    assert records[0]["caller"] == "cli" and records[0]["requestId"] is None


async def test_the_openapi_document_declares_it_on_every_operation(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    operations = [op for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert len(operations) > 20
    for op in operations:
        assert any(p["in"] == "header" and p["name"] == "X-Request-Id" for p in op["parameters"]), op
        for response in op["responses"].values():
            assert "X-Request-Id" in response["headers"]


def test_the_access_log_names_each_requests_id(tmp_path: Path) -> None:
    """``BOLLARD_ACCESS_LOG=true``: each of uvicorn's access lines ends with the request's
    id, the one the response's ``X-Request-Id`` says (kept or made)."""
    import httpx

    from tests.support.standin import BollardServer

    (tmp_path / "i").mkdir()
    env = {"BOLLARD_SECRET_KEY": "k", "BOLLARD_ACCESS_LOG": "true"}
    server = BollardServer(tmp_path / "i", tmp_path / "d", env)
    try:
        kept = httpx.get(server.url + "/healthz", headers={"X-Request-Id": "access-42"})
        made = httpx.get(server.url + "/api/integrations")  # 401, an id of its own
    finally:
        server.stop()
    assert kept.headers["x-request-id"] == "access-42" and made.status_code == 401
    lines = server.log.read_text().splitlines()
    healthz = [line for line in lines if '"GET /healthz HTTP/1.1" 200' in line]
    assert healthz and healthz[-1].endswith(" [access-42]"), lines[-10:]
    listing = [line for line in lines if '"GET /api/integrations HTTP/1.1" 401' in line]
    assert listing == [listing[0]] and listing[0].endswith(f" [{made.headers['x-request-id']}]"), lines[-10:]
