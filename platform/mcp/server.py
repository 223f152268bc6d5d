"""The MCP server over the runtime, on the SDK's low-level ``Server`` (DESIGN §9).

Low-level because the tools come from manifests, not Python functions. Protocol revision
2026-07-28 (sessionless; ``server/discover``, ``subscriptions/listen``, multi-round-trip
``input_required``; the SDK still serves older clients their handshake). What it serves:

- ``tools/list``, ``tools/call`` (``tools.py``), results ``results.py``, held writes
  ``approvals.py`` and the Tasks extension ``tasks.py`` (applied through the SDK's
  ``Extension`` API: its methods and its ``tools/call`` interceptor);
- ``resources/list``, ``resources/templates/list``, ``resources/read`` (``resources.py``);
- ``subscriptions/listen`` through the SDK's ``ListenHandler`` on an in-process
  ``SubscriptionBus``. The server's lifespan forwards Bollard's event bus onto it: a
  ``registry`` event (a folder created, edited or deleted, an upload) sends
  ``tools/list_changed``, ``resources/list_changed`` and the integration's
  ``resources/updated``; an ``approval`` event (each decision) sends
  ``resources/updated`` for ``bollard://approvals/{id}``; a ``resync`` sends both lists.
- list results carry ``ttlMs``/``cacheScope`` (:data:`LIST_CACHE`: private, they depend on
  the token; short, and a listening client is told of every change).
- a stdio client on an older revision gets ``notifications/tools/list_changed`` and
  ``resources/list_changed`` on its connection instead (:class:`LegacyChannel`).

The multi-round-trip ``requestState`` is sealed by the SDK's ``RequestStateBoundary``
with a key derived from the credential encryption keys, so every replica and restart
reads it (bound to the tool, its arguments and the token).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from mcp.server import Server
from mcp.server.caching import CacheHint
from mcp.server.extension import compose_tool_call_handler
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bollard.platform import tracing
from bollard.platform.mcp import resources, tools
from bollard.platform.mcp.approvals import approval_uri
from bollard.platform.mcp.host import McpHost
from bollard.platform.mcp.tasks import ApprovalTasks

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
    from mcp.server.session import ServerSession

    from bollard.platform.events import Event

log = logging.getLogger("bollard.mcp")

NAME = "bollard"
INSTRUCTIONS = (
    "Bollard runs the named operations of installed integrations. Each tool is one operation; "
    "reads answer at once. A write waits for a person's approval: its result is the pending approval "
    "(or a task, or an approval page to open), and the outcome arrives once a person decided. "
    "Read bollard://integrations/{slug} for what an integration does and how to set it up."
)
LIST_CACHE = CacheHint(ttl_ms=5_000, scope="private")


def _events_for(event: Event) -> list[ServerEvent]:
    if event.topic == "registry":
        out: list[ServerEvent] = [ToolsListChanged(), ResourcesListChanged()]
        slug = event.payload.get("slug")
        if isinstance(slug, str):
            out.append(ResourceUpdated(uri=resources.integration_uri(slug)))
        return out
    if event.topic == "approval" and isinstance(event.payload.get("id"), str):
        return [ResourceUpdated(uri=approval_uri(event.payload["id"]))]
    if event.topic == "resync":
        return [ToolsListChanged(), ResourcesListChanged()]
    return []


class LegacyChannel:
    """The stdio connection of a client on an older protocol revision (the handshake era has
    no ``subscriptions/listen``; changes go out as plain notifications on the connection).
    Only stdio has one long-lived connection per process; HTTP is stateless for those
    clients, with no channel to push on."""

    def __init__(self) -> None:
        self.session: ServerSession | None = None

    def remember(self, ctx: ServerRequestContext[Any, Any]) -> None:
        if ctx.request is None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self.session = ctx.session

    async def send(self, event: ServerEvent) -> None:
        session = self.session
        if session is None:
            return
        try:
            if isinstance(event, ToolsListChanged):
                await session.send_tool_list_changed()
            elif isinstance(event, ResourcesListChanged):
                await session.send_resource_list_changed()
        except Exception as e:  # the client went away: nothing to tell
            log.debug("legacy list_changed not sent: %s", type(e).__name__)


async def forward_events(host: McpHost, bus: InMemorySubscriptionBus, legacy: LegacyChannel) -> None:
    """Publish Bollard's ``registry`` and ``approval`` events on the SDK's bus (and to a
    legacy stdio client) until cancelled."""
    async with host.runtime.events.subscribe("registry", "approval") as queue:
        while True:
            event = await queue.get()
            for server_event in _events_for(event):
                await bus.publish(server_event)
                await legacy.send(server_event)


class SpansWhenTracing:
    """The SDK's ``OpenTelemetryMiddleware`` (a span per request, the caller's ``_meta``
    trace context as its parent), run only while Bollard records spans
    (:func:`bollard.platform.tracing.active`: a provider was in use when the runtime
    started, ``tracing.py``). Without one, every span it opens is the API's no-op, which
    still cost ~40 µs of the ~0.9 ms a ``tools/call`` takes on the server
    (``bench/bench_mcp.py``, server side in process)."""

    def __init__(self, inner: ServerMiddleware[Any]) -> None:
        self.inner = inner

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if tracing.active():
            return await self.inner(ctx, call_next)
        return await call_next(ctx)


def request_state_security(host: McpHost) -> RequestStateSecurity:
    """AES-GCM under keys derived from Bollard's secret keys (HMAC-SHA256 of a purpose
    label, 32 bytes; the SDK stretches them again with HKDF), primary first, so a rotation
    keeps unsealing state sealed under the previous key."""
    from bollard.platform.runtime import secret_keys

    s = host.runtime.settings
    keys = [
        hmac.new(k.encode(), b"bollard/mcp/request-state", hashlib.sha256).digest() for k in secret_keys(s)
    ]
    return RequestStateSecurity(keys=keys, ttl=float(s.approval_ttl_s))


def build_server(host: McpHost) -> Server[dict[str, Any]]:
    """The MCP server over ``host.runtime`` (module docstring)."""
    bus = InMemorySubscriptionBus()
    listen = ListenHandler(bus)
    legacy = LegacyChannel()

    @contextlib.asynccontextmanager
    async def lifespan(_: Server[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        task = asyncio.get_running_loop().create_task(forward_events(host, bus, legacy))
        try:
            yield {}
        finally:
            listen.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], _: PaginatedRequestParams | None
    ) -> ListToolsResult:
        legacy.remember(ctx)
        return ListToolsResult(tools=tools.tools(host, ctx))

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        legacy.remember(ctx)
        return await tools.call(host, ctx, params)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], _: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        host.principal(ctx)
        legacy.remember(ctx)
        return ListResourcesResult(resources=resources.resources(host))

    async def list_templates(
        ctx: ServerRequestContext[Any, Any], _: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=resources.templates())

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        contents = await resources.read(host, ctx, str(params.uri))
        return ReadResourceResult(contents=list(contents))

    server: Server[dict[str, Any]] = Server(
        NAME,
        version=_version(),
        title="Bollard",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        cache_hints={
            "tools/list": LIST_CACHE,
            "resources/list": LIST_CACHE,
            "resources/templates/list": CacheHint(ttl_ms=3_600_000, scope="public"),
        },
        get_tool_input_schema=lambda name: _input_schema(host, name),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscriptions_listen=listen,
    )
    # the SDK's default list holds its OpenTelemetryMiddleware ("drop it to opt out"; its
    # module is private, so it is known by name)
    server.middleware[:] = [
        SpansWhenTracing(m) if type(m).__name__ == "OpenTelemetryMiddleware" else m for m in server.middleware
    ]
    server.middleware.append(RequestStateBoundary(request_state_security(host), default_audience=NAME))
    extension = ApprovalTasks(host)
    for method in extension.methods():
        server.add_request_handler(method.method, method.params_type, method.handler)
    server.extensions[extension.identifier] = extension.settings()
    server.add_request_handler(
        "tools/call", CallToolRequestParams, compose_tool_call_handler([extension], call_tool)
    )
    return server


def _input_schema(host: McpHost, name: str) -> dict[str, Any] | None:
    """A tool's input schema by name, for the SDK's ``Mcp-Param-*`` header checks."""
    spec = host.spec(None, name)
    return spec.schema if spec is not None else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bollard")
    except PackageNotFoundError:  # a source tree without the installed package
        return "0.0.0"
