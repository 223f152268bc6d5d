"""What every MCP handler shares: the runtime, who calls, and where the approval page is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from bollard.platform.tools import ToolSpec, tool_specs

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bollard.platform.runtime import Runtime
    from bollard.platform.tokens import Principal

SPEC_CACHE_SIZE = 256  # (registry state, principal) pairs kept


@dataclass(frozen=True)
class _Specs:
    """One principal's tools for one registry state: sorted by name, and by name."""

    ordered: list[ToolSpec]
    by_name: dict[str, ToolSpec]


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
    _specs: dict[tuple[Any, ...], _Specs] = field(default_factory=dict, repr=False)

    def _lookup(self, principal: Principal | None) -> _Specs:
        """The tool specs of ``principal`` for the registry's current state, computed once
        per state (the serving content hash of every integration) and principal."""
        registry = self.runtime.registry
        state = tuple((e.slug, e.version.content_hash if e.version else None) for e in registry.entries())
        key = (state, principal)
        found = self._specs.get(key)
        if found is None:
            if len(self._specs) >= SPEC_CACHE_SIZE:
                self._specs.clear()
            specs = tool_specs(registry, principal)
            # reversed: the first of a repeated name wins, as a scan of the list would find it
            found = self._specs[key] = _Specs(specs, {s.name: s for s in reversed(specs)})
        return found

    def specs(self, principal: Principal | None) -> list[ToolSpec]:
        """``tools.tool_specs`` for ``principal``, computed once per registry state: a call
        looks its tool up without copying every operation's schema again."""
        return self._lookup(principal).ordered

    def spec(self, principal: Principal | None, name: str) -> ToolSpec | None:
        """The tool ``name`` of ``principal``, or ``None`` (a dict look-up: every
        ``tools/call`` asks twice, once for the SDK's ``Mcp-Param-*`` header check)."""
        return self._lookup(principal).by_name.get(name)

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
        """``path`` (``/api/…``) on Bollard's external base URL."""
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
