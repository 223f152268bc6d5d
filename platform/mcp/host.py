"""What every MCP handler shares: the runtime, who calls, and where the approval page is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bollard.platform.runtime import Runtime
    from bollard.platform.tokens import Principal


def configured_base_url(runtime: Runtime) -> str:
    """``BOLLARD_PUBLIC_URL``, else ``http://{host}:{port}`` (no trailing slash)."""
    s = runtime.settings
    return (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")


@dataclass
class McpHost:
    """The runtime behind one MCP server, with two per-request lookups: ``principal_of``
    (the token that calls; ``None`` refuses the request) and ``base_url_of`` (Bollard's
    external base URL, for the approval page ``<base>/approvals/<id>``)."""

    runtime: Runtime
    principal_of: Callable[[ServerRequestContext[Any, Any]], Principal | None]
    base_url_of: Callable[[ServerRequestContext[Any, Any]], str]

    def principal(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        """The caller; raises ``MCPError`` (invalid request) when none is authenticated, which
        only a transport mounted without the bearer middleware can cause."""
        found = self.principal_of(ctx)
        if found is None:
            raise MCPError(INVALID_REQUEST, "not authenticated: send 'Authorization: Bearer <token>'")
        return found

    def approval_page(self, ctx: ServerRequestContext[Any, Any], approval_id: str) -> str:
        """The web page where a person decides ``approval_id``."""
        return f"{self.base_url_of(ctx)}/approvals/{approval_id}"

    def api_url(self, ctx: ServerRequestContext[Any, Any], path: str) -> str:
        return f"{self.base_url_of(ctx)}{path}"


def request_base_url(runtime: Runtime) -> Callable[[ServerRequestContext[Any, Any]], str]:
    """``base_url_of`` for HTTP: ``BOLLARD_PUBLIC_URL`` when set (behind a proxy the request's
    own host may not be what a person can open), else the request's scheme and host."""

    def base(ctx: ServerRequestContext[Any, Any]) -> str:
        if runtime.settings.public_url:
            return runtime.settings.public_url.rstrip("/")
        request = ctx.request
        url = getattr(request, "base_url", None)
        return str(url).rstrip("/") if url is not None else configured_base_url(runtime)

    return base
