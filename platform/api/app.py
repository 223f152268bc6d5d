"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute

from bollard.platform.api import (
    approvals,
    executions,
    files,
    integrations,
    meta,
    metrics,
    oauth2,
    operations,
    tokens,
    tools,
    webhooks,
)
from bollard.platform.api import settings as settings_api  # not `settings`: create_app's parameter
from bollard.platform.api.errors import install_error_handlers
from bollard.platform.api.fast_invoke import FastInvoke
from bollard.platform.api.limits import BodySizeLimit
from bollard.platform.api.openapi import install_docs
from bollard.platform.api.request_id import RequestIdMiddleware
from bollard.platform.mcp.transport import McpHttp
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from bollard.platform.web import install_web


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The runtime starts in the lifespan (migrations, registry, watcher),
    then MCP's session manager (streamable HTTP at ``/mcp``, ``platform/mcp/``)."""
    rt = runtime or Runtime(settings or Settings())
    mcp = McpHttp(rt)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not rt.started:
            await rt.start()
        try:
            # BOLLARD_METRICS_PORT, when set; then MCP's session manager
            async with metrics.serve_metrics_port(rt), mcp.run():
                yield
        finally:
            await rt.stop()

    app = FastAPI(
        title="Bollard",
        description="A sandboxed, manifest-driven integration host.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs with local assets (works offline)
        redoc_url=None,
    )
    app.state.runtime = rt
    # innermost of the middlewares (added first), inside the error handlers: the plain
    # valid operation call without FastAPI's per-request work (fast_invoke.py)
    app.add_middleware(FastInvoke)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries X-Request-Id
    # /mcp and its protected-resource metadata first: routes match in order, and every
    # router before /mcp cost an MCP call ~10% of its server time (bench/bench_mcp.py)
    app.router.routes[:0] = mcp.routes
    # Then the operations route, which takes nearly every other call (each router before
    # it cost a match per call, 22 µs in all, docs/perf-profile.md); no other route
    # matches its method and path. The OpenAPI document keeps the order it had
    # (documented_routes).
    app.include_router(operations.router)
    app.include_router(meta.router)
    app.include_router(metrics.router)
    app.include_router(oauth2.router)
    app.include_router(integrations.router)
    app.include_router(approvals.router)
    app.include_router(executions.router)
    app.include_router(files.router)
    app.include_router(tokens.router)
    app.include_router(settings_api.router)
    app.include_router(tools.router)
    app.include_router(webhooks.router)
    install_docs(app, routes=lambda: documented_routes(app))
    install_web(app)  # the Settings > Integrations page at / (DESIGN §13)
    return app


def documented_routes(app: FastAPI) -> list[BaseRoute]:
    """``app.routes`` in the OpenAPI document's order: the operations router, first for
    matching, goes back after the integrations router."""
    routes = list(app.routes)

    def index(router: APIRouter) -> int:
        return next(i for i, r in enumerate(routes) if getattr(r, "original_router", None) is router)

    hot = routes.pop(index(operations.router))
    routes.insert(index(integrations.router) + 1, hot)
    return routes
