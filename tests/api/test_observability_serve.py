"""``bollard serve`` end to end: with ``BOLLARD_OTLP_ENDPOINT`` its spans reach an OTLP/HTTP
collector (a stand-in on 127.0.0.1 decoding the protobuf), the server log names each
line's request id, and under ``--workers N`` each process serves its own metrics port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import BollardServer, ServerThread, free_port

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


def _two_free_ports() -> int:
    """A port P with P and P + 1 free a moment ago."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def test_each_server_process_serves_its_own_metrics_port(tmp_path: Path) -> None:
    integrations = tmp_path / "integrations"
    write_integration(integrations, "echo", manifest=rest_manifest(), connector=CONNECTOR)
    api_port, metrics_port = free_port(), _two_free_ports()
    env = {**os.environ, "BOLLARD_SECRET_KEY": "k", "BOLLARD_RELOAD": "false"}
    env["BOLLARD_METRICS_PORT"] = str(metrics_port)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bollard.platform.cli", "serve", "--port", str(api_port), "--workers", "2",
             "--integrations", str(integrations), "--data-dir", str(tmp_path / "data")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        answered: set[int] = set()
        while answered != {metrics_port, metrics_port + 1}:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            for port in (metrics_port, metrics_port + 1):
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                    if r.status_code == 200 and "bollard_executions" in r.text:
                        answered.add(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
