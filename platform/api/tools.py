"""Operations as tool definitions (DESIGN §9): ``GET /api/tools?format=openai|anthropic|mcp``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from bollard.platform import tokens
from bollard.platform.api.deps import get_runtime, known_query, principal
from bollard.platform.api.openapi import AUTH, errors
from bollard.platform.runtime import Runtime
from bollard.platform.tools import tool_definitions

router = APIRouter(prefix="/api/tools", tags=["tools"], dependencies=[Depends(known_query)])


@router.get(
    "",
    summary="One tool definition per operation the token may call, for a model's tool list",
    responses=errors(*AUTH),
)
async def list_tools(
    format: Literal["openai", "anthropic", "mcp"] = Query(
        "openai", description="openai (function tools), anthropic (input_schema) or mcp (the MCP Tool)"
    ),
    runtime: Runtime = Depends(get_runtime),
    who: tokens.Principal = Depends(principal),
) -> dict[str, Any]:
    """``{"format", "tools": [...], "count"}``: tools sorted by name (``platform/tools.py``)."""
    tools = tool_definitions(runtime.registry, format, who)
    return {"format": format, "tools": tools, "count": len(tools)}
