"""The execution log: filters (integration, operation, outcome, caller, time), paging,
and a detail view with the envelope and the connector's log lines (DESIGN §8, §13).
Admins see every call; agents, as in the API, only their own calls' details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from bollard.platform.errors import ApiError
from bollard.platform.execution_log import ExecutionFilter
from bollard.platform.web.base import WebRoute, forbid_agent, is_htmx, render, runtime_of, session_of

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 25
OUTCOMES = ("succeeded", "failed", "pending_approval")
CALLERS = ("api", "cli", "mcp", "tools", "ui", "approval")
FILTERS = ("integration", "operation", "status", "caller", "since", "until")


def _time(name: str, value: str) -> datetime | None:
    """A ``datetime-local`` field (read as UTC) or ISO 8601 with an offset."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            "invalid_request", f"{name}: not a date and time ({value[:40]!r}); use 2026-01-31T12:00"
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def envelope(record: dict[str, Any]) -> dict[str, Any]:
    """The result envelope as the log recorded it (the data itself is not logged)."""
    body: dict[str, Any] = {
        "success": record["status"] == "succeeded",
        "integration": record["integration"],
        "operation": record["operation"],
        "version": record["version"],
        "durationMs": record["durationMs"],
    }
    if record["status"] == "pending_approval":
        body = {"status": "pending", "approvalId": record["approvalId"], **body}
        body.pop("success")
    if record["errorCode"]:
        body["error"] = {"code": record["errorCode"], "message": record["errorMessage"]}
    return body


@router.get("/executions")
async def executions_page(request: Request) -> Response:
    session = await session_of(request)
    forbid_agent(session, "the execution log")
    q = {k: request.query_params.get(k, "").strip()[:200] for k in FILTERS}
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    items, total = await runtime_of(request).execution_log.query(
        ExecutionFilter(
            integration=q["integration"] or None,
            operation=q["operation"] or None,
            status=q["status"] or None,
            caller=q["caller"] or None,
            since=_time("since", q["since"]),
            until=_time("until", q["until"]),
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    )
    pages = max(1, -(-total // PAGE_SIZE))
    kept = {k: v for k, v in q.items() if v}

    def link(n: int) -> str:
        return "/executions?" + urlencode({**kept, "page": n})

    template = "parts/execution_table.html" if is_htmx(request) else "executions.html"
    return render(
        request,
        template,
        session=session,
        items=items,
        total=total,
        page=page,
        pages=pages,
        prev_link=link(page - 1) if page > 1 else None,
        next_link=link(page + 1) if page < pages else None,
        q=q,
        outcomes=OUTCOMES,
        callers=CALLERS,
        integrations=[e.slug for e in runtime_of(request).registry.entries()],
    )


@router.get("/executions/{execution_id}")
async def execution_page(request: Request, execution_id: str) -> Response:
    session = await session_of(request)
    found = await runtime_of(request).execution_log.get(execution_id)
    if found is None or (not session.principal.is_admin and found["tokenId"] != session.principal.token_id):
        raise ApiError("unknown_execution", f"no execution '{execution_id[:80]}'", status=404)
    return render(request, "execution.html", session=session, e=found, envelope=envelope(found))
