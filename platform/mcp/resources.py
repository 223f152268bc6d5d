"""MCP resources (DESIGN §9): ``bollard://integrations/{slug}`` and ``bollard://approvals/{id}``.

An integration resource is the catalog's detail (``catalog.detail``: what it does, its
operations with their parameter schemas, its setup guide, which credentials are set —
never their values) plus the tool name of each operation. An approval resource is the
approval as ``GET /api/approvals/{id}`` shows it, read as the caller (agents see their
own). Both are ``application/json``. Subscribers get ``notifications/resources/updated``
for an integration when its folder changes and for an approval on each decision
(``server.py`` forwards the event bus).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_types import (
    Resource,
    ResourceTemplate,
    TextResourceContents,
)

from bollard.platform import catalog
from bollard.platform.errors import BollardError

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bollard.platform.mcp.host import McpHost

RESOURCE_NOT_FOUND = -32002  # MCP's code for an unknown resource URI
INTEGRATIONS = "bollard://integrations/"
APPROVALS = "bollard://approvals/"
JSON = "application/json"


def integration_uri(slug: str) -> str:
    return f"{INTEGRATIONS}{slug}"


def resources(host: McpHost) -> list[Resource]:
    """One resource per integration with a serving version, sorted by slug."""
    out = []
    for entry in host.runtime.registry.entries():
        if entry.version is None:
            continue
        m = entry.version.manifest
        out.append(
            Resource(
                uri=integration_uri(entry.slug),
                name=entry.slug,
                title=m.title,
                description=m.description or None,
                mime_type=JSON,
            )
        )
    return sorted(out, key=lambda r: str(r.uri))


def templates() -> list[ResourceTemplate]:
    return [
        ResourceTemplate(
            uri_template=f"{INTEGRATIONS}{{slug}}",
            name="integration",
            title="An integration",
            description="What it does, its operations and their parameters, its setup guide",
            mime_type=JSON,
        ),
        ResourceTemplate(
            uri_template=f"{APPROVALS}{{id}}",
            name="approval",
            title="A held write's approval",
            description="Its status (pending until a person decides), what will run, and the result once run",
            mime_type=JSON,
        ),
    ]


async def read(host: McpHost, ctx: ServerRequestContext[Any, Any], uri: str) -> list[TextResourceContents]:
    """The contents of ``uri``; raises ``MCPError`` ``-32002`` naming the URI for an unknown one."""
    rt = host.runtime
    principal = host.principal(ctx)
    try:
        if uri.startswith(INTEGRATIONS):
            slug = uri[len(INTEGRATIONS) :]
            value: dict[str, Any] = await catalog.detail(rt.registry, rt.credentials, slug)
            value["tools"] = {s.operation: s.name for s in host.specs(principal) if s.slug == slug}
        elif uri.startswith(APPROVALS):
            value = await rt.approvals.get(uri[len(APPROVALS) :], principal)
        else:
            raise MCPError(
                RESOURCE_NOT_FOUND,
                f"Resource not found: {uri[:200]} (bollard://integrations/{{slug}} or bollard://approvals/{{id}})",
            )
    except BollardError as e:
        raise MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {uri[:200]}: {e.message}") from None
    text = json.dumps(value, ensure_ascii=False, default=str)
    return [TextResourceContents(uri=uri, mime_type=JSON, text=text)]
