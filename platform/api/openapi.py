"""The OpenAPI document and the offline API docs (DESIGN §8).

- Every route documents each status it can answer with the JSON error model
  (:func:`errors` groups error codes by their status from ``STATUS_BY_CODE``), and FastAPI's
  automatic ``422 Validation Error`` is removed: body and parameter errors answer ``400``
  ``invalid_request`` (``api/errors.py``).
- ``/docs`` (Swagger UI) and ``/redoc`` load their JavaScript and CSS from this server:
  the files ship in the ``fastapi-offline`` package (the same ``swagger-ui-dist@5`` and
  ``redoc@2`` builds FastAPI's default pages fetch from a CDN), so the docs work offline.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from bollard.platform.errors import STATUS_BY_CODE

ASSETS_URL = "/docs/assets"


class ErrorDetail(BaseModel):
    code: str = Field(..., description="machine-readable error code (DESIGN §8), e.g. invalid_request")
    message: str = Field(..., description="what went wrong and what would fix it")
    details: Any | None = Field(None, description="structured details, e.g. every failing field path")


class ErrorBody(BaseModel):
    """``{"error": {"code", "message", "details"?}}``. A failed invoke answers its result
    envelope, which carries the same ``error`` next to ``success: false`` and more fields."""

    error: ErrorDetail


# What each code means, shown in the OpenAPI document next to the status that carries it.
CODE_HELP: dict[str, str] = {
    "invalid_request": "the body is not JSON or not of the documented shape, or a query parameter "
    "is unknown or invalid",
    "invalid_params": "a parameter fails the operation's schema (each problem names its path)",
    "invalid_credential": "a credential id or value is not acceptable",
    "no_mock": "useMock was asked for an operation without a mock result",
    "unauthorized": "no bearer token, or an unknown or revoked one",
    "forbidden": "this action needs an admin token",
    "read_only": "a read operation tried to write",
    "host_not_allowed": "the connector tried to reach a host outside allowedHosts",
    "not_found": "nothing at that id",
    "unknown_integration": "no such integration is installed",
    "unknown_operation": "the integration has no such operation",
    "unknown_credential": "no credential stored under that credentialId",
    "unknown_execution": "no such execution record",
    "integration_error": "the integration's folder failed to load",
    "invalid_package": "an uploaded package breaks a rule (each reason names the file or entry and the rule)",
    "conflict": "the slug is installed: replacing it needs replace=true and a higher version",
    "needs_credentials": "required credential values are not set",
    "approval_expired": "the approval was not decided in time",
    "approval_stale": "the integration changed since the approval was requested",
    "approval_decided": "the approval was already decided (it runs at most once)",
    "payload_too_large": "the request body is over the size limit",
    "limit_exceeded": "a sandbox or SQL limit was reached",
    "rate_limited": "a rate limit was reached (see Retry-After)",
    "too_many_concurrent": "the operation's maxConcurrency is reached (see Retry-After)",
    "internal_error": "a server bug; the message carries an error id the server log shows",
    "config_error": "the server is misconfigured",
    "credentials_unreadable": "stored credentials cannot be decrypted with the configured key",
    "connector_error": "the connector raised an error",
    "network_error": "the upstream could not be reached",
    "sql_error": "the database refused the query",
    "connection_failed": "the database connection failed",
    "oauth2_error": "the OAuth2 provider refused or failed",
    "bad_response": "the upstream answered something unusable",
    "sandbox_unavailable": "no sandbox worker could be started",
    "timeout": "the call ran out of time",
}

# Codes every route can answer: an unknown query parameter (400) and a server bug (500).
COMMON = ("invalid_request", "internal_error")
AUTH = ("unauthorized",)
ADMIN = ("unauthorized", "forbidden")
BODY = ("invalid_request", "payload_too_large")


def errors(*codes: str, common: tuple[str, ...] = COMMON) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: one entry per status of ``codes`` (plus ``common``),
    each with the JSON error model and a description naming its codes."""
    by_status: dict[int, list[str]] = {}
    for code in (*codes, *common):
        status = STATUS_BY_CODE.get(code, 500)
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    return {
        status: {
            "model": ErrorBody,
            "description": "; ".join(f"`{c}`: {CODE_HELP.get(c, c.replace('_', ' '))}" for c in names),
        }
        for status, names in sorted(by_status.items())
    }


def html_or_json(*statuses: int, ok: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a page that answers HTML, or JSON when asked (the OAuth2 callback)."""
    error_schema = {"$ref": "#/components/schemas/ErrorBody"}
    out: dict[int | str, dict[str, Any]] = {
        200: {
            "description": ok,
            "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {}},
        }
    }
    for status in statuses:
        out[status] = {
            "model": ErrorBody,
            "description": "the failure, as an HTML page or (when asked) the JSON error",
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": error_schema},
            },
        }
    return out


def install_docs(app: FastAPI, routes: Callable[[], list[BaseRoute]] | None = None) -> None:
    """Serve ``/docs`` and ``/redoc`` with local assets and a cleaned OpenAPI document.

    The app must be created with ``docs_url=None, redoc_url=None``. ``routes``: the routes
    to document, in the document's order (default ``app.routes``), called when the
    document is first built.
    """
    static = importlib.resources.files("fastapi_offline") / "static"
    app.mount(ASSETS_URL, StaticFiles(directory=str(static)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.openapi = _openapi_builder(app, routes)  # type: ignore[method-assign]


def _openapi_builder(
    app: FastAPI, routes: Callable[[], list[BaseRoute]] | None
) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=routes() if routes is not None else app.routes,
            )
            app.openapi_schema = document_request_id(drop_fastapi_422(doc))
        return app.openapi_schema

    return build


def drop_fastapi_422(doc: dict[str, Any]) -> dict[str, Any]:
    """Remove FastAPI's automatic ``422`` (and its schemas): Bollard answers 400 instead."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            r422 = op.get("responses", {}).get("422")
            if r422 is not None and "HTTPValidationError" in str(r422):
                del op["responses"]["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


REQUEST_ID_HEADER = {
    "name": "X-Request-Id",
    "in": "header",
    "required": False,
    "description": "your id for this request: kept when it is 1-64 of A-Z a-z 0-9 . _ : -, "
    "else replaced by a new one; sent back, logged and stored with the execution record",
    "schema": {"type": "string"},
}
REQUEST_ID_RESPONSE_HEADER = {
    "description": "the request's id (yours when it was sane, else a new one: 32 hex digits)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
}


def document_request_id(doc: dict[str, Any]) -> dict[str, Any]:
    """Declare ``X-Request-Id`` (``api/request_id.py``) on every operation: an optional
    request header and a header of every response."""
    for item in doc.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            params = op.setdefault("parameters", [])
            if not any(
                p.get("in") == "header" and p.get("name", "").lower() == "x-request-id" for p in params
            ):
                params.append(dict(REQUEST_ID_HEADER))
            for response in op["responses"].values():
                response.setdefault("headers", {})["X-Request-Id"] = dict(REQUEST_ID_RESPONSE_HEADER)
    return doc
