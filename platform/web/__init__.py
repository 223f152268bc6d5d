"""The Settings > Integrations web page at ``/`` (DESIGN §13).

Server-rendered Jinja2 with htmx for partial updates and Pico CSS, both vendored from
their npm packages (``static/vendor``, refreshed by ``make vendor``; no CDN). Modules:
:mod:`.session` (signed cookie session, CSRF), :mod:`.headers` (CSP and the other
security headers), :mod:`.base` (route class, templates, render), :mod:`.markdown`
(setup guides), :mod:`.forms` (run forms from parameter schemas), and one module per
page family: :mod:`.auth`, :mod:`.integrations`, :mod:`.manage`, :mod:`.approvals`,
:mod:`.executions`, :mod:`.tokens`. Every action goes through the services the HTTP API
uses (catalog, credential store, execution service, approvals, installer, tokens).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from bollard.platform.web import approvals, auth, executions, integrations, manage, tokens
from bollard.platform.web.base import STATIC_DIR
from bollard.platform.web.headers import HEADERS


class _Static(StaticFiles):
    """The vendored assets with the page's security headers and a day of caching."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                extra.append((b"cache-control", b"public, max-age=86400"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await super().__call__(scope, receive, send_with_headers)  # type: ignore[arg-type]


def install_web(app: FastAPI) -> None:
    """Mount the page's routes and ``/static`` on ``app`` (routes hidden from OpenAPI)."""
    for module in (auth, integrations, manage, approvals, executions, tokens):
        app.include_router(module.router)
    app.mount("/static", _Static(directory=STATIC_DIR), name="static")
