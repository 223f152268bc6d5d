"""Test support for the sandbox tests: a real local HTTP server and an ``http_handler``
that forwards to it with httpx (standing in for the platform's egress layer)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HttpRequest, HttpResponse


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test-Server", "yes")
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.hits += 1
        query = parse_qs(url.query)
        if url.path == "/json":
            echo = {
                "method": self.command,
                "path": url.path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_b64": base64.b64encode(body).decode(),
            }
            self._send(200, json.dumps(echo).encode(), "application/json")
        elif url.path.startswith("/status/"):
            status = int(url.path.rsplit("/", 1)[1])
            self._send(status, json.dumps({"error": f"status {status}"}).encode(), "application/json")
        elif url.path == "/text":
            self._send(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif url.path == "/bytes":
            n = int(query.get("n", ["16"])[0])
            self._send(
                200,
                bytes(range(256)) * (n // 256) + bytes(range(n % 256)),
                "application/octet-stream",
            )
        elif url.path == "/hits":
            self._send(200, json.dumps({"hits": self.server.hits}).encode(), "application/json")
        else:
            self._send(404, b"not found", "text/plain")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits = 0
        self.lock = threading.Lock()


class LocalServer:
    """A threaded HTTP server on 127.0.0.1: ``/json`` echoes the request, ``/status/<n>``,
    ``/text`` (latin-1), ``/bytes?n=``, ``/hits`` (requests served so far)."""

    def __init__(self) -> None:
        self._server = _Server()
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def hits(self) -> int:
        with self._server.lock:
            return self._server.hits

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def local_server() -> Iterator[LocalServer]:
    server = LocalServer().start()
    try:
        yield server
    finally:
        server.stop()


class Egress:
    """An ``http_handler`` for the pool: requests to the local server are made with one
    shared ``httpx.AsyncClient``; any other host is refused with ``host_not_allowed``."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.client = httpx.AsyncClient(timeout=10)
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        url = httpx.URL(request.url)
        if (url.host, url.port) != ("127.0.0.1", self.server.port):
            raise HttpRequestRefused("host_not_allowed", f"host {url.host} is not in allowedHosts")
        content = request.body.encode() if request.body is not None else request.binary_body
        r = await self.client.request(
            request.method,
            request.url,
            headers=request.headers,
            params=request.params,
            json=request.json,
            content=content,
        )
        return HttpResponse(r.status_code, r.reason_phrase, dict(r.headers), r.content, str(r.url))

    async def close(self) -> None:
        await self.client.aclose()


# Module-scoped fixtures shared by the sandbox test modules (loaded by conftest.py).
@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with local_server() as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def egress(server: LocalServer) -> AsyncIterator[Egress]:
    e = Egress(server)
    yield e
    await e.close()
