"""Real HTTP(S) servers on 127.0.0.1 for tests.

- :class:`ServerThread`: uvicorn serving any ASGI app in a daemon thread (HTTPS with the
  certificates of :func:`make_certificates`);
- :class:`LocalServer`: a :class:`ServerThread` with an echo app, for the sandbox tests,
  and :class:`Egress`, the ``http_handler`` that forwards a sandbox's requests to it
  (standing in for the platform's egress layer);
- :func:`raw_servers`: raw asyncio TCP servers, for answers no HTTP server would give;
- :class:`BollardServer` and :func:`bollard`: the real ``bollard`` command in a subprocess,
  for multi-process tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HttpRequest, HttpResponse


def _bound_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1 (not listening yet)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, for a server in another process."""
    with _bound_socket() as sock:
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread; ``url`` once started.

    ``config`` goes to ``uvicorn.Config`` (e.g. ``ssl_certfile``/``ssl_keyfile``).
    """

    def __init__(self, app: Any, **config: Any) -> None:
        self.sock = _bound_socket()
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1, **config)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.sock.close()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def raw_servers(handlers: dict[str, RawHandler], *, ready_timeout_s: float = 60) -> dict[str, int]:
    """Serve each ``handler(reader, writer)`` on a free port of 127.0.0.1, from a daemon
    thread with its own event loop (for the life of the process); name -> port. A
    connection error in a handler is ignored, and its writer is closed after it."""
    ports: dict[str, int] = {}
    ready = threading.Event()

    def wrap(handler: RawHandler) -> RawHandler:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        return serve

    async def main() -> None:
        servers = []
        for name, handler in handlers.items():
            server = await asyncio.start_server(wrap(handler), "127.0.0.1", 0)
            ports[name] = server.sockets[0].getsockname()[1]
            servers.append(server)
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    if not ready.wait(ready_timeout_s):
        raise RuntimeError("the raw servers did not start")
    return ports


def make_certificates(directory: Path, names: tuple[str, ...] = ("localhost",)) -> tuple[Path, Path, Path]:
    """A CA and a leaf certificate valid for ``names`` only (default ``localhost``; no IP
    SAN), written to ``directory``: ``(ca.pem, cert.pem, key.pem)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bollard test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


# ----------------------------------------------------------------- the sandbox's upstream


class LocalServer(ServerThread):
    """An echo server on 127.0.0.1; every answer carries ``X-Test-Server: yes``.

    ``/json`` echoes the request (method, path, query as lists, lower-cased headers, the
    body in base64), ``/status/<n>`` answers status n, ``/text`` is latin-1 text,
    ``/bytes?n=`` n bytes, ``/hits`` the number of requests served so far (this one too).
    """

    def __init__(self) -> None:
        self._hits = 0
        self._lock = threading.Lock()
        super().__init__(self._app, interface="asgi3")

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    def __enter__(self) -> LocalServer:
        super().__enter__()
        return self

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        with self._lock:
            self._hits += 1
        path = request.url.path
        query = parse_qs(request.url.query)
        status, content_type, content = 200, "application/json", b""
        if path == "/json":
            echo = {
                "method": request.method,
                "path": path,
                "query": query,
                "headers": dict(request.headers.items()),
                "body_b64": base64.b64encode(body).decode(),
            }
            content = json.dumps(echo).encode()
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            content = json.dumps({"error": f"status {status}"}).encode()
        elif path == "/text":
            content_type, content = "text/plain; charset=iso-8859-1", "café".encode("latin-1")
        elif path == "/bytes":
            n = int(query.get("n", ["16"])[0])
            content_type = "application/octet-stream"
            content = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        elif path == "/hits":
            content = json.dumps({"hits": self.hits}).encode()
        else:
            status, content_type, content = 404, "text/plain", b"not found"
        headers = {"Content-Type": content_type, "X-Test-Server": "yes"}
        await Response(content, status_code=status, headers=headers)(scope, receive, send)


class Egress:
    """An ``http_handler`` for the sandbox pool: requests to ``server`` are made with one
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


# ----------------------------------------------------------------- bollard in a subprocess


def bollard(*args: str, env: dict[str, str]) -> str:
    """Run the CLI in a subprocess; return its stdout (raises on a non-zero exit)."""
    out = subprocess.run(
        [sys.executable, "-m", "bollard.platform.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise AssertionError(f"bollard {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


class BollardServer:
    """``bollard serve`` on a free port, started and healthy; ``stop()`` or ``kill()`` it.

    Its output goes to ``log`` (``<data_dir>/server-<port>.log``).
    """

    def __init__(self, integrations: Path, data_dir: Path, env: dict[str, str], *, workers: int = 1) -> None:
        """``workers``: ``serve --workers`` (one process unless a test asks for more)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bollard.platform.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--integrations",
                    str(integrations),
                    "--data-dir",
                    str(data_dir),
                    "--workers",
                    str(workers),
                ],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
