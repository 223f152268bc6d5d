"""The operations route's fast path (ASGI middleware; performance issue 15).

``POST /api/integrations/{slug}/operations/{operation}`` is nearly every request, and
FastAPI's per-request machinery (route matching, one recursive dependency solve per
dependency, parameter extraction) cost more than the rest of the app together
(docs/perf-profile.md). This middleware, just inside the error handlers, answers the
plain valid call itself, exactly as the route would (``operations.run_invoke``):

- no query string and no ``root_path``; the path's two segments non-empty;
- ``Content-Type: application/json`` exactly and a ``Content-Length`` of at most
  64 KiB; the body a JSON object that ``InvokeBody`` accepts, its ``params`` without
  NaN/±Infinity;
- ``Authorization: Bearer <token>`` (read as FastAPI's ``HTTPBearer`` reads it) of a
  known token; an unknown one gets the route's 401 (``deps.unauthorized``).

The route also answers every request FastAPI's own OpenTelemetry instrumentation records
(once an SDK provider is installed), so its spans and metrics keep the route's name.
Any other request, including every one the route would refuse, goes on to the app with
the body already read handed back unchanged, and the route answers it as before: each
error keeps its one source.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bollard.platform.api.deps import UNKNOWN_TOKEN, unauthorized
from bollard.platform.api.operations import InvokeBody, run_invoke
from bollard.platform.errors import BollardError
from bollard.platform.params import non_finite_problems

_PREFIX = "/api/integrations/"
_MAX_BODY = 64 * 1024  # larger bodies take the route (no gain there, and no second buffer)


class FastInvoke:
    """See the module docstring. ``app``: the rest of the stack (FastAPI's routing); the
    runtime is ``scope["app"].state.runtime``, as for the routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = _target(scope) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        content_type = length = authorization = None
        for name, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"content-length" and length is None:
                length = value
            elif name == b"authorization" and authorization is None:
                authorization = value
        if content_type != b"application/json" or length is None or not length.isdigit():
            await self.app(scope, receive, send)
            return
        size = int(length)
        if not 0 < size <= _MAX_BODY:
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the app sees it as it would have
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        call = self._plain_call(body, size, authorization) if read[-1]["type"] == "http.request" else None
        if call is None:
            await self.app(scope, _replay(read, receive), send)
            return
        invoke_body, token = call
        runtime = scope["app"].state.runtime
        try:
            who = await runtime.tokens.authenticate(token)
            if who is None:
                raise unauthorized(UNKNOWN_TOKEN)
            response = await run_invoke(runtime, target[0], target[1], invoke_body, who)
        except BollardError as exc:  # as the app's BollardError handler answers it
            response = JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        await response(scope, receive, send)

    @staticmethod
    def _plain_call(body: bytes, size: int, authorization: bytes | None) -> tuple[InvokeBody, str] | None:
        """The validated body and the bearer token, or None for anything the route
        should answer itself."""
        if len(body) != size or authorization is None:
            return None
        header = authorization.decode("latin-1")
        scheme, credentials = get_authorization_scheme_param(header)
        token = credentials.strip()
        if not (header and scheme and token) or scheme.lower() != "bearer":
            return None
        try:
            data: Any = json.loads(body)  # what Starlette's Request.json() does
            if not isinstance(data, dict):
                return None
            parsed = InvokeBody.model_validate(data)
        except Exception:  # noqa: BLE001 - the route reports what is wrong with the body
            return None
        if non_finite_problems(parsed.params):
            return None
        return parsed, token


def _target(scope: Scope) -> tuple[str, str] | None:
    """``(slug, operation)`` when ``scope`` is a plain POST to the operations route."""
    if scope["method"] != "POST" or scope.get("query_string") or scope.get("root_path"):
        return None
    if scope.get("fastapi.telemetry") is not None:
        # FastAPI's own OpenTelemetry instrumentation is recording this request (an SDK
        # provider is installed): its span and metrics take the route's name from
        # FastAPI's routing, so the route answers
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX):
        return None
    parts = path[len(_PREFIX) :].split("/")
    if len(parts) != 3 or parts[1] != "operations" or not parts[0] or not parts[2]:
        return None
    return parts[0], parts[2]


def _replay(read: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(read)

    async def again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
