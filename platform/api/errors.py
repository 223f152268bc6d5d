"""JSON errors: ``{"error": {"code", "message", "details"?}}`` with a fitting status (DESIGN §8).

One handler turns any :class:`~bollard.platform.errors.BollardError` into its JSON error;
Starlette's own HTTP errors and FastAPI's body validation get the same shape; anything
unexpected answers a JSON 500 ``internal_error`` with an error id that the server log
shows next to the stack trace (the caller never sees the trace).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from bollard.platform.api.asgi import StartTracker
from bollard.platform.errors import BollardError, error_body
from bollard.platform.manifest import format_path

log = logging.getLogger("bollard.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def validation_body(exc: RequestValidationError) -> dict[str, Any]:
    """FastAPI's body and parameter validation as ``invalid_request`` (one status: 400).

    Malformed JSON names its line, column and character offset; every other problem
    names its field path (``credentialId``, ``query.limit``) and what is wrong.
    """
    details: list[dict[str, Any]] = []
    for e in exc.errors():
        loc = list(e.get("loc", ()))
        if e.get("type") == "json_invalid":
            details.append(json_error(exc.body, loc[-1] if loc else 0, (e.get("ctx") or {}).get("error")))
            continue
        where = loc[0] if loc else "body"
        rest = loc[1:] if where in ("body", "query", "path", "header", "cookie") else loc
        path = format_path(rest) if where == "body" else format_path([where, *rest])
        message = e.get("msg", "")
        if e.get("type") == "missing" and where == "body" and not rest:
            message = "a JSON request body is required"
        details.append({"path": path, "message": message})
    message = "; ".join(f"{d['path']}: {d['message']}" if d["path"] else d["message"] for d in details)
    return error_body("invalid_request", message or "invalid request", details)


def json_error(doc: Any, pos: Any, reason: Any) -> dict[str, Any]:
    """A ``details`` entry for a body that is not JSON: line and column (1-based) and the
    character offset (0-based) of the problem, as :class:`json.JSONDecodeError` reports them."""
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else str(doc or "")
    offset = pos if isinstance(pos, int) else 0
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return {
        "path": "",
        "message": f"the request body must be JSON (Content-Type: application/json), but it is not valid "
        f"JSON: {reason or 'parse error'} at line {line} column {column} (char {offset})",
        "line": line,
        "column": column,
        "position": offset,
    }


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110 §15.5.6: a 405's ``Allow``
    lists them all; Starlette's names only the first route that matched the path, and
    ``PUT`` and ``DELETE`` of one path are often two routes). Asks each route whether it
    fully matches the path with each method (``BaseRoute.matches``)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers and the catch-all middleware on ``app``."""

    @app.exception_handler(BollardError)
    async def _bollard_error(_: Request, exc: BollardError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method[:16]} is not allowed here; this path accepts {', '.join(allowed)}"
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc), status_code=400)

    app.add_middleware(InternalErrors)


class InternalErrors:
    """ASGI middleware: an exception no handler answered becomes a JSON 500
    ``internal_error`` whose message carries an error id; the log has the id and the
    trace. A response that already started is left to the server (it closes it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = StartTracker(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception:
            error_id = secrets.token_hex(8)
            log.exception("internal error %s in %s %s", error_id, scope.get("method"), scope.get("path"))
            if tracked.started:
                raise
            response = JSONResponse(
                error_body(
                    "internal_error",
                    f"internal error (error id {error_id}); the server log has the details",
                    {"errorId": error_id},
                ),
                status_code=500,
            )
            await response(scope, receive, send)
