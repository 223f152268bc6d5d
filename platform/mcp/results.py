"""Tool results for MCP: ``structuredContent`` plus the same JSON as text, sized for a model.

Every result (an operation's envelope, a validation failure, a pending or decided
approval) is capped by ``model_results.py`` to ``BOLLARD_MAX_MODEL_RESULT_CHARS``
(default 20 000 characters; valid JSON, ``truncated: true`` when cut). The capped value is
the ``structuredContent``; its compact JSON is the one text block, so a client that only
reads text sees the same thing (MCP 2025-06-18 and later: "a tool that returns structured
content SHOULD also return the serialized JSON in a TextContent block").
"""

from __future__ import annotations

from typing import Any

from mcp_types import CallToolResult, TextContent

from bollard.platform.model_results import MIN_MAX_CHARS, cap_for_model, model_json


def tool_result(body: dict[str, Any], *, is_error: bool, max_chars: int) -> CallToolResult:
    """``body`` (a JSON object) as a tool result; ``is_error`` marks a call that failed (a
    model reads the error and can correct its arguments; MCP ``isError``)."""
    try:
        text: str | None = model_json(body)
    except (ValueError, RecursionError):  # NaN, infinity, absurd nesting: cap_for_model cleans it
        text = None
    if text is not None and len(text) <= max(MIN_MAX_CHARS, max_chars):
        structured = body  # what cap_for_model returns for a result that fits, without a second dump
    else:
        capped = cap_for_model(body, max_chars)
        structured = capped if isinstance(capped, dict) else {"value": capped}
        text = model_json(structured)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=is_error,
    )


def error_result(code: str, message: str, *, max_chars: int, **extra: Any) -> CallToolResult:
    """A failed call in the API's error shape, ``{"success": false, "error": {code, message}}``."""
    return tool_result(
        {"success": False, "error": {"code": code, "message": message}, **extra},
        is_error=True,
        max_chars=max_chars,
    )
