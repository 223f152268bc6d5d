"""Approvals: a card per pending write showing exactly what will run, approve, reject
with a reason; decided ones with their result (DESIGN §6, §13). ``/approvals/{id}`` is
the page MCP's URL-mode elicitation links to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from bollard.platform import tokens
from bollard.platform.web.base import (
    WebRoute,
    forbid_agent,
    form_text,
    is_htmx,
    render,
    runtime_of,
    session_of,
)
from bollard.platform.web.session import Session

router = APIRouter(route_class=WebRoute, include_in_schema=False)
DECIDED_SHOWN = 50


async def token_names(request: Request, session: Session) -> dict[str, str]:
    """Token id → name, for "asked by" and "decided by" (admins only: the API lists tokens
    to admins alone; an agent sees its own requests, by id)."""
    if not session.principal.is_admin:
        return {}
    return {t.id: t.name for t in await tokens.list_tokens(runtime_of(request).db)}


@router.get("/approvals")
async def approvals_page(request: Request) -> Response:
    session = await session_of(request)
    rt = runtime_of(request)
    pending, _ = await rt.approvals.list(status="pending", principal=session.principal, limit=200)
    recent, _ = await rt.approvals.list(principal=session.principal, limit=DECIDED_SHOWN + len(pending))
    decided = [a for a in recent if a["status"] != "pending"][:DECIDED_SHOWN]
    template = "parts/approval_lists.html" if is_htmx(request) else "approvals.html"
    names = await token_names(request, session)
    return render(request, template, session=session, pending=pending, decided=decided, names=names)


@router.get("/approvals/{approval_id}")
async def approval_page(request: Request, approval_id: str) -> Response:
    session = await session_of(request)
    approval = await runtime_of(request).approvals.get(approval_id, session.principal)
    template = "parts/approval_card.html" if is_htmx(request) else "approval.html"
    names = await token_names(request, session)
    return render(request, template, session=session, a=approval, single=True, names=names)


async def _after(request: Request, approval: dict[str, Any], session: Session) -> Response:
    """The decided card for htmx; a redirect to the approval's page for a plain form."""
    if is_htmx(request):
        names = await token_names(request, session)
        return render(request, "parts/approval_card.html", session=session, a=approval, names=names)
    return RedirectResponse(f"/approvals/{approval['id']}", status_code=303)


@router.post("/approvals/{approval_id}/approve")
async def approve(request: Request, approval_id: str) -> Response:
    """Approve and run it once (the approvals service claims it atomically). Admin only."""
    session = await session_of(request)
    forbid_agent(session, "approving a write")
    approval = await runtime_of(request).approvals.approve(approval_id, session.principal)
    return await _after(request, approval, session)


@router.post("/approvals/{approval_id}/reject")
async def reject(request: Request, approval_id: str) -> Response:
    session = await session_of(request)
    forbid_agent(session, "rejecting a write")
    reason = (await form_text(request, "reason", limit=2000)).strip() or None
    approval = await runtime_of(request).approvals.reject(approval_id, session.principal, reason)
    return await _after(request, approval, session)
