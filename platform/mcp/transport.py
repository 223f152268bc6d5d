"""Transports: streamable HTTP at ``/mcp`` inside ``bollard serve``, and stdio for ``bollard mcp``.

HTTP (:class:`McpHttp`): the SDK's ``StreamableHTTPSessionManager`` in stateless mode —
2026-07-28 requests are sessionless anyway, and an older client's handshake gets a fresh
transport per request — behind the SDK's bearer middleware with
:class:`~bollard.platform.mcp.auth.BollardTokenVerifier`. A request without a valid token
gets the SDK's 401 challenge naming the protected-resource metadata,
``/.well-known/oauth-protected-resource/mcp``, which says the resource is ``<base>/mcp``
and its authorization server is Bollard itself (``<base>``: ``BOLLARD_PUBLIC_URL`` or
``http://{host}:{port}``; tokens come from ``bollard token create``). DNS-rebinding
protection (``transport_security``) admits the ``Host`` and ``Origin`` values of
:func:`allowed_hosts` / :func:`allowed_origins`. The host app's lifespan runs the manager
(:meth:`McpHttp.run`).

stdio (:func:`serve_stdio`): one principal, the token given to ``bollard mcp``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp

from bollard.platform.mcp.auth import BollardTokenVerifier, request_principal
from bollard.platform.mcp.host import McpHost, configured_base_url, request_base_url
from bollard.platform.mcp.server import build_server

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime
    from bollard.platform.tokens import Principal

PATH = "/mcp"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(runtime: Runtime) -> list[str]:
    """``Host`` values ``/mcp`` answers: ``BOLLARD_MCP_ALLOWED_HOSTS``, the public URL's host,
    the listen address with its port, and any port of the loopback names when it listens on
    loopback (a ``*`` port is a wildcard, the SDK's syntax)."""
    s = runtime.settings
    hosts = list(s.mcp_allowed_hosts)
    if s.public_url:
        hosts.append(urlsplit(s.public_url).netloc)
    hosts.append(f"{s.host}:{s.port}")
    if _loopback(s.host):
        hosts.extend(f"{h}:*" for h in LOOPBACK)
    return list(dict.fromkeys(hosts))


def allowed_origins(runtime: Runtime) -> list[str]:
    """``Origin`` values ``/mcp`` answers (a request without one, as from an agent, passes):
    ``BOLLARD_MCP_ALLOWED_ORIGINS``, the public URL, and the loopback origins on loopback."""
    s = runtime.settings
    origins = list(s.mcp_allowed_origins)
    if s.public_url:
        parts = urlsplit(s.public_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    origins.append(f"http://{s.host}:{s.port}")
    if _loopback(s.host):
        origins.extend(f"http://{h}:*" for h in LOOPBACK)
    return list(dict.fromkeys(origins))


class McpHttp:
    """``/mcp`` for the FastAPI app: :attr:`routes` to add, :meth:`run` for its lifespan."""

    def __init__(self, runtime: Runtime) -> None:
        host = McpHost(runtime, request_principal, request_base_url(runtime))
        self.server = build_server(host)
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            security_settings=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=allowed_hosts(runtime),
                allowed_origins=allowed_origins(runtime),
            ),
        )
        base = configured_base_url(runtime)
        resource = AnyHttpUrl(f"{base}{PATH}")
        endpoint: ASGIApp = RequireAuthMiddleware(
            StreamableHTTPASGIApp(self.manager), [], build_resource_metadata_url(resource)
        )
        endpoint = AuthenticationMiddleware(
            AuthContextMiddleware(endpoint), backend=BearerAuthBackend(BollardTokenVerifier(runtime))
        )
        self.routes: list[Route] = [
            Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]),
            *create_protected_resource_routes(
                resource_url=resource,
                authorization_servers=[AnyHttpUrl(base)],
                scopes_supported=["agent", "admin"],
                resource_name="Bollard",
            ),
        ]

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Run the session manager (and the server's lifespan: the event forwarding).

        In a task of its own: the manager's anyio task group must be left by the task that
        entered it, and a host may end its lifespan from another task (pytest-asyncio's
        fixture teardown does)."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.manager.run():
                started.set()
                await stop.wait()

        task = asyncio.get_running_loop().create_task(serve())
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # it failed to start: raise why
            waiting.cancel()
            task.result()
        try:
            yield
        finally:
            stop.set()
            await task


async def serve_stdio(runtime: Runtime, principal: Principal) -> None:
    """Serve MCP on this process's stdin/stdout as ``principal`` until stdin closes."""
    from mcp.server.stdio import stdio_server

    base = configured_base_url(runtime)
    host = McpHost(runtime, lambda _ctx: principal, lambda _ctx: base)
    server = build_server(host)
    options = server.create_initialization_options(
        NotificationOptions(tools_changed=True, resources_changed=True)
    )
    async with stdio_server() as (read, write):
        await server.run(read, write, options)
