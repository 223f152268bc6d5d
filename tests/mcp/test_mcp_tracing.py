"""With tracing on (``BOLLARD_OTLP_ENDPOINT``), a ``tools/call`` over ``/mcp`` is the SDK's
SERVER span with Bollard's ``bollard.invoke`` inside it (``server.py``: the SDK's span runs
only while Bollard records spans)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.mcp import http_client
from tests.support.paths import SHIPPED
from tests.support.standin import BollardServer, ServerThread


class Collector:
    """An OTLP/HTTP stand-in: keeps every span posted to ``/v1/traces``."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    async def traces(self, request: Request) -> Response:
        sent = ExportTraceServiceRequest.FromString(await request.body())
        with self.lock:
            self.spans += [s for rs in sent.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return Response(b"", media_type="application/x-protobuf")


async def test_a_tool_call_is_the_sdks_server_span_around_bollard_invoke(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED, tmp_path / "integrations")
    collector = Collector()
    with ServerThread(collector.app) as otlp:
        env = {"BOLLARD_OTLP_ENDPOINT": otlp.url, "BOLLARD_RELOAD": "false"}
        server = BollardServer(tmp_path / "integrations", tmp_path / "data", env)
        try:
            token = (tmp_path / "data" / "admin.token").read_text().strip()
            async with http_client(server.url, token) as client:
                result = await client.call_tool("hotel__get_reservation", {"id": 1})
            assert result.is_error is False
        finally:
            server.stop()  # SIGTERM: the runtime stops and flushes the batched spans
    with collector.lock:
        spans = {s.name: s for s in collector.spans}
    call, invoke = spans["tools/call hotel__get_reservation"], spans["bollard.invoke"]
    assert call.kind == Span.SPAN_KIND_SERVER
    assert invoke.trace_id == call.trace_id and invoke.parent_span_id == call.span_id
