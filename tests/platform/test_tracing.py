"""OpenTelemetry spans around a call (platform/tracing.py), recorded with the SDK's
in-memory exporter: names, parent/child links, attributes, and that no parameter value,
credential value, URL path or query, or exception text reaches any attribute."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bollard.platform import tracing
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import app_client, local_settings
from tests.support.integrations import rest_manifest, sqlite_manifest, write_integration
from tests.support.standin import LocalServer

SECRET = "sk-trace-Secret-Value-0042"
PARAM = "param-value-Private-77"

CONNECTOR = """
BASE = "{base}"

def execute(ctx):
    if ctx.operation == "fetch":
        token = ctx.secrets.get("apiKey")
        r = ctx.http.get(BASE + "/json?key=" + token, params={{"q": ctx.params.get("q")}})
        return r.json()["method"]
    if ctx.operation == "offlist":
        return ctx.http.get("https://example.org/" + ctx.params.get("q")).status
    raise Exception("failed with " + ctx.params.get("q"))
"""

SEED = "CREATE TABLE IF NOT EXISTS t (n TEXT); INSERT INTO t VALUES ('a'), ('b');"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    tracing.use_provider(provider)
    try:
        yield exp
    finally:
        tracing.use_provider(None)
        provider.shutdown()


@pytest.fixture
async def client(
    server: LocalServer, integrations_dir: Path, data_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    write_integration(
        integrations_dir,
        "svc",
        manifest=rest_manifest(
            authMethod="api_key",
            secretBindings=["apiKey"],
            allowedHosts=[server.url],
            operations=[
                {"name": n, "parametersSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}
                for n in ("fetch", "offlist", "fail")
            ]
            + [{"name": "send", "operationType": "write"}],
        ),
        connector=CONNECTOR.format(base=server.url),
    )
    write_integration(
        integrations_dir,
        "rows",
        manifest=sqlite_manifest(
            "r.db",
            [
                {
                    "name": "find",
                    "query": "SELECT n FROM t WHERE n <> @q",
                    "parametersSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
                }
            ],
        ),
        connector=None,
        extra={"seed.sql": SEED},
    )
    settings = local_settings(integrations_dir, data_dir)
    async with app_client(settings) as (c, rt):
        r = await c.put("/api/integrations/svc/credentials", json={"values": {"apiKey": SECRET}})
        assert r.status_code == 200, r.text
        yield c, rt


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def assert_no_private_values(spans: tuple[ReadableSpan, ...]) -> None:
    for s in spans:
        for key, v in (s.attributes or {}).items():
            text = str(v)
            assert SECRET not in text and PARAM not in text, (s.name, key, text)
            assert "/json" not in text and "key=" not in text, (s.name, key, text)
        assert s.events == () or all(e.name != "exception" for e in s.events)
        assert SECRET not in str(s.status.description) and PARAM not in str(s.status.description)


async def invoke(c: httpx.AsyncClient, slug: str, op: str, **headers: str) -> httpx.Response:
    return await c.post(
        f"/api/integrations/{slug}/operations/{op}", json={"params": {"q": PARAM}}, headers=headers
    )


async def test_a_rest_call_is_invoke_then_sandbox_then_egress(
    client: tuple[httpx.AsyncClient, Runtime], exporter: InMemorySpanExporter, server: LocalServer
) -> None:
    c, _ = client
    r = await invoke(c, "svc", "fetch", **{"X-Request-Id": "trace-req-1"})
    assert r.status_code == 200, r.text
    spans = exporter.get_finished_spans()
    (inv,) = by_name(spans, "bollard.invoke")
    (sandbox,) = by_name(spans, "bollard.sandbox.run")
    (egress,) = by_name(spans, "bollard.egress.request")
    assert sandbox.parent is not None and sandbox.parent.span_id == inv.context.span_id
    assert egress.parent is not None and egress.parent.span_id == sandbox.context.span_id
    assert inv.context.trace_id == sandbox.context.trace_id == egress.context.trace_id
    assert inv.attributes is not None and egress.attributes is not None
    assert inv.attributes["bollard.integration"] == "svc"
    assert inv.attributes["bollard.operation"] == "fetch"
    assert inv.attributes["bollard.outcome"] == "succeeded"
    assert inv.attributes["bollard.request_id"] == "trace-req-1"
    assert inv.attributes["http.response.status_code"] == 200
    assert egress.kind == SpanKind.CLIENT
    assert egress.attributes["server.address"] == "127.0.0.1"
    assert egress.attributes["http.request.method"] == "GET"
    assert egress.attributes["http.response.status_code"] == 200
    assert_no_private_values(spans)


async def test_an_incoming_traceparent_makes_the_call_part_of_the_callers_trace(
    client: tuple[httpx.AsyncClient, Runtime], exporter: InMemorySpanExporter
) -> None:
    c, _ = client
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = await invoke(c, "svc", "fetch", traceparent=f"00-{trace_id}-{parent_id}-01")
    assert r.status_code == 200
    (inv,) = by_name(exporter.get_finished_spans(), "bollard.invoke")
    assert format(inv.context.trace_id, "032x") == trace_id
    assert inv.parent is not None and format(inv.parent.span_id, "016x") == parent_id
    exporter.clear()
    await invoke(c, "svc", "fetch", traceparent="not a traceparent")  # ignored: a new trace
    (inv,) = by_name(exporter.get_finished_spans(), "bollard.invoke")
    assert inv.parent is None and format(inv.context.trace_id, "032x") != trace_id


async def test_refusals_and_failures_carry_the_code_only(
    client: tuple[httpx.AsyncClient, Runtime], exporter: InMemorySpanExporter
) -> None:
    c, _ = client
    assert (await invoke(c, "svc", "offlist")).json()["error"]["code"] == "host_not_allowed"
    assert (await invoke(c, "svc", "fail")).json()["error"]["code"] == "connector_error"
    spans = exporter.get_finished_spans()
    (egress,) = by_name(spans, "bollard.egress.request")
    assert egress.attributes is not None and egress.attributes["bollard.error_code"] == "host_not_allowed"
    assert egress.attributes["server.address"] == "example.org"
    assert egress.status.status_code == StatusCode.ERROR
    invokes = by_name(spans, "bollard.invoke")
    assert [s.attributes["bollard.error_code"] for s in invokes if s.attributes] == [
        "host_not_allowed",
        "connector_error",
    ]
    assert all(s.status.status_code == StatusCode.ERROR for s in invokes)
    assert_no_private_values(spans)


async def test_a_write_is_held_then_runs_under_run_approved(
    client: tuple[httpx.AsyncClient, Runtime], exporter: InMemorySpanExporter
) -> None:
    c, _ = client
    r = await c.post("/api/integrations/svc/operations/send", json={"params": {}})
    assert r.status_code == 202
    approval_id = r.json()["approvalId"]
    spans = exporter.get_finished_spans()
    (inv,) = by_name(spans, "bollard.invoke")
    (held,) = by_name(spans, "bollard.approval.request")
    assert held.parent is not None and held.parent.span_id == inv.context.span_id
    assert held.attributes is not None and held.attributes["bollard.approval_id"] == approval_id
    assert inv.attributes is not None and inv.attributes["bollard.outcome"] == "pending_approval"
    assert not by_name(spans, "bollard.sandbox.run")  # nothing ran
    exporter.clear()
    r = await c.post(f"/api/approvals/{approval_id}/approve")
    assert r.status_code == 200, r.text
    spans = exporter.get_finished_spans()
    (run,) = by_name(spans, "bollard.run_approved")
    (sandbox,) = by_name(spans, "bollard.sandbox.run")
    assert sandbox.parent is not None and sandbox.parent.span_id == run.context.span_id
    assert run.attributes is not None and run.attributes["bollard.approval_id"] == approval_id


async def test_a_sql_call_is_invoke_then_sql(
    client: tuple[httpx.AsyncClient, Runtime], exporter: InMemorySpanExporter
) -> None:
    c, _ = client
    r = await invoke(c, "rows", "find")
    assert r.status_code == 200, r.text
    spans = exporter.get_finished_spans()
    (inv,) = by_name(spans, "bollard.invoke")
    (sql,) = by_name(spans, "bollard.sql.run")
    assert sql.parent is not None and sql.parent.span_id == inv.context.span_id
    assert sql.attributes is not None
    assert sql.attributes["db.system.name"] == "sqlite"
    assert sql.attributes["bollard.rows"] == 2
    assert sql.attributes["bollard.truncated"] is False
    assert_no_private_values(spans)


async def test_connection_test_is_one_span(
    client: tuple[httpx.AsyncClient, Runtime], exporter: InMemorySpanExporter
) -> None:
    c, _ = client
    assert (await c.post("/api/integrations/rows/test")).json()["ok"] is True
    (span,) = by_name(exporter.get_finished_spans(), "bollard.connection_test")
    assert span.attributes is not None and span.attributes["bollard.outcome"] == "succeeded"


def test_nothing_is_exported_without_an_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.endpoint(Settings(data_dir=tmp_path)) is None
    assert tracing.configure(Settings(data_dir=tmp_path)) is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.endpoint(Settings(data_dir=tmp_path)) == "http://127.0.0.1:4318"
    assert (
        tracing.endpoint(Settings(data_dir=tmp_path, otlp_endpoint="http://127.0.0.1:9"))
        == "http://127.0.0.1:9"
    )
