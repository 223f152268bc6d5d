"""``bollard serve`` end to end: with ``BOLLARD_OTLP_ENDPOINT`` its spans reach an OTLP/HTTP
collector (a stand-in on 127.0.0.1 decoding the protobuf), and the server log names each
line's request id."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import BollardServer, ServerThread

CONNECTOR = """
def execute(ctx):
    print("hello from the connector")
    return {"ok": True}
"""


class Collector:
    """Records what arrives at ``POST /v1/traces``."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    async def traces(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.requests.append(ExportTraceServiceRequest.FromString(body))
        return Response(b"", media_type="application/x-protobuf")

    def span_names(self) -> list[str]:
        with self.lock:
            return [
                span.name
                for req in self.requests
                for rs in req.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]


def test_serve_exports_spans_over_otlp_and_logs_request_ids(tmp_path: Path) -> None:
    integrations = tmp_path / "integrations"
    write_integration(integrations, "echo", manifest=rest_manifest(), connector=CONNECTOR)
    collector = Collector()
    with ServerThread(collector.app) as otlp:
        env = {"BOLLARD_SECRET_KEY": "k", "BOLLARD_OTLP_ENDPOINT": otlp.url, "BOLLARD_RELOAD": "false"}
        server = BollardServer(integrations, tmp_path / "data", env)
        try:
            token = (tmp_path / "data" / "admin.token").read_text().strip()
            r = httpx.post(
                f"{server.url}/api/integrations/echo/operations/echo",
                json={"params": {}},
                headers={"Authorization": f"Bearer {token}", "X-Request-Id": "serve-req-42"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-request-id"] == "serve-req-42"
        finally:
            server.stop()  # SIGTERM: the runtime stops and flushes the batched spans
        names = collector.span_names()
    assert "bollard.invoke" in names and "bollard.sandbox.run" in names
    with collector.lock:
        resource = collector.requests[0].resource_spans[0].resource
    assert any(a.key == "service.name" and a.value.string_value == "bollard" for a in resource.attributes)
    lines = server.log.read_text().splitlines()
    assert any("[serve-req-42]" in line and "hello from the connector" in line for line in lines), lines[-20:]
    assert any("tracing: exporting spans over OTLP/HTTP" in line and "[-]" in line for line in lines)
