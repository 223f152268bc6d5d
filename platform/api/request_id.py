"""Request id middleware (ASGI): ``X-Request-Id`` in, on the response, in the task's context.

A sane incoming ``X-Request-Id`` (``request_id.accept``) is kept, anything else replaced
by a new id; the id is set for the request's task (logs, execution records, spans) and
sent back on every response, errors included. While spans are recorded
(``tracing.py``), an incoming W3C ``traceparent``/``tracestate`` makes the request's spans
children of the caller's. Pure ASGI: no per-request task or body copy (a
``BaseHTTPMiddleware`` would add both).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bollard.platform import request_id, tracing

_HEADER = request_id.HEADER.lower().encode("latin-1")


class RequestIdMiddleware:
    """Gives each HTTP request one id (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope.get("headers", ()) if k == _HEADER), None)
        rid = request_id.accept(incoming.decode("latin-1") if incoming is not None else None)
        raw = rid.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
                headers.append((_HEADER, raw))
                message["headers"] = headers
            await send(message)

        token = request_id.set_current(rid)
        trace_token = tracing.attach_incoming(scope["headers"]) if tracing.active() else None
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if trace_token is not None:
                tracing.detach(trace_token)
            request_id.reset(token)
