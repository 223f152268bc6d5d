"""``GET /metrics``: this replica's Prometheus metrics (DESIGN §12), admin tokens only.

With ``BOLLARD_METRICS_PORT`` the same body is also served without a token on
``BOLLARD_METRICS_HOST:BOLLARD_METRICS_PORT`` (:func:`serve_metrics_port`), for a
Prometheus that scrapes a port the API's clients cannot reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from bollard.platform import metrics, tokens
from bollard.platform.api.deps import admin, get_runtime, known_query
from bollard.platform.api.openapi import ADMIN, errors
from bollard.platform.errors import BollardError
from bollard.platform.runtime import Runtime

log = logging.getLogger("bollard.metrics")
router = APIRouter(tags=["meta"], dependencies=[Depends(known_query)])


async def render(runtime: Runtime) -> bytes:
    """The exposition body; the approvals' counts are re-read first (a failure to read
    them is logged and the last counts are shown)."""
    try:
        await metrics.refresh(runtime)
    except Exception:
        log.exception("reading approval counts for /metrics failed")
    return runtime.metrics.render()


@router.get(
    "/metrics",
    summary="Prometheus metrics of this replica (admin)",
    response_class=Response,
    responses={
        200: {
            "description": "the Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **errors(*ADMIN),
    },
)
async def get_metrics(
    runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> Response:
    return Response(await render(runtime), media_type=metrics.CONTENT_TYPE)


class MetricsApp:
    """A tiny ASGI app for the metrics port: ``GET /metrics`` (no token), 404 elsewhere."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            status, body, ctype = 200, await render(self.runtime), metrics.CONTENT_TYPE
        else:
            status, body, ctype = 404, b"only GET /metrics is served here\n", "text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def metrics_port(port: int) -> int:
    """The metrics port of this process: ``port``, plus the process's index under
    ``bollard serve --workers N`` (``BOLLARD_WORKER_INDEX``, 0…N-1), because each server
    process has its own counters and must be scraped as a target of its own (the API port's
    ``/metrics`` answers whichever process took the connection)."""
    index = os.environ.get("BOLLARD_WORKER_INDEX", "")
    return port + int(index) if index.isdigit() else port


@contextlib.asynccontextmanager
async def serve_metrics_port(runtime: Runtime) -> AsyncIterator[None]:
    """Serve :class:`MetricsApp` on the metrics port (:func:`metrics_port`) while the
    block runs, when ``metrics_port`` is set (uvicorn on the same event loop; stopped on
    exit)."""
    s = runtime.settings
    if s.metrics_port is None:
        yield
        return
    port = metrics_port(s.metrics_port)
    import uvicorn  # lazy: only servers need it

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the API's server owns the signals

    config = uvicorn.Config(
        MetricsApp(runtime), host=s.metrics_host, port=port, log_level="warning", lifespan="off"
    )
    server = Server(config)
    # Bound here, not by uvicorn: its bind error is a sys.exit, which would stop this loop.
    family = socket.AF_INET6 if ":" in s.metrics_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((s.metrics_host, port))
    except OSError as e:
        sock.close()
        raise BollardError(
            "config_error",
            f"cannot serve metrics on {s.metrics_host}:{port} ({e.strerror}): "
            "set BOLLARD_METRICS_PORT to a free port, or unset it",
        ) from None
    task = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("metrics: serving /metrics without a token on %s:%d", s.metrics_host, port)
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        sock.close()
