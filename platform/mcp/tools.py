"""``tools/list`` and ``tools/call``: every operation is a tool (DESIGN §9).

Names, schemas, descriptions and annotations come from ``platform/tools.py`` (the same as
``GET /api/tools?format=mcp``). A call goes through the one execution service
(``rt.execution.invoke``, caller ``mcp``): it validates the arguments (a failure is an
``isError`` result whose message names the parameter path, ``params.<path>: …``), holds a
write for approval (``approvals.py`` says how the agent waits) and runs a read. A read
runs in the request's task, so a client that disconnects or cancels cancels it: the
sandbox worker is killed, the SQL statement cancelled (``sandbox/pool.py``,
``sql/pg_reads.py``). Requesting an approval is shielded from that cancellation: the row
and its log entry are written whole or not at all; the approval itself never depends on
the connection.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolRequestParams, CallToolResult, InputRequiredResult, Tool

from bollard.platform.invocation import Invocation
from bollard.platform.mcp import approvals
from bollard.platform.mcp.results import tool_result
from bollard.platform.mcp.tasks import declares_tasks
from bollard.platform.tools import ToolSpec, mcp_tool

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bollard.platform.mcp.host import McpHost
    from bollard.platform.tokens import Principal


def tools(host: McpHost, ctx: ServerRequestContext[Any, Any]) -> list[Tool]:
    """The caller's tools, sorted by name, as MCP ``Tool`` models."""
    return [Tool.model_validate(mcp_tool(spec)) for spec in host.specs(host.principal(ctx))]


def _spec(host: McpHost, principal: Principal, name: str) -> ToolSpec:
    """The tool ``name`` of ``principal``; an unknown name is a protocol error (MCP: "Unknown
    tools" → ``-32602``), naming how to list them."""
    spec = host.spec(principal, name)
    if spec is None:
        raise MCPError(INVALID_PARAMS, f"no tool named '{name[:80]}'; list the tools with tools/list")
    return spec


async def call(
    host: McpHost, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
) -> CallToolResult | InputRequiredResult:
    """Run one ``tools/call`` (module docstring)."""
    principal = host.principal(ctx)
    spec = _spec(host, principal, params.name)
    rt = host.runtime
    cap = rt.settings.max_model_result_chars
    if params.request_state is not None:  # the retry of a held write (URL elicitation)
        state = approvals.parse_state(params.request_state)
        if state is not None:
            return await approvals.resume(host, ctx, params, principal, *state)
    inv = Invocation(
        spec.slug,
        spec.operation,
        dict(params.arguments or {}),
        caller="mcp",
        token_id=principal.token_id,
        role=principal.role,
    )
    if spec.needs_approval:
        outcome = await asyncio.shield(rt.execution.invoke(inv))
    else:
        outcome = await rt.execution.invoke(inv)
    if outcome.status == 202:
        if approvals.wants_url_elicitation(ctx) and not declares_tasks(ctx):
            return approvals.elicit(host, ctx, outcome.body)
        return approvals.pending_result(host, ctx, outcome.body)
    return tool_result(outcome.body, is_error=not outcome.ok, max_chars=cap)
