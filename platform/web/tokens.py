"""Tokens: create an agent token (shown once), list, revoke (DESIGN §8, §13). Admin only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from bollard.platform import tokens
from bollard.platform.errors import ApiError
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


async def _page(request: Request, session: Session, status: int = 200, **ctx: object) -> Response:
    items = [t.to_json() for t in await tokens.list_tokens(runtime_of(request).db)]
    template = "parts/tokens_body.html" if is_htmx(request) else "tokens.html"
    return render(request, template, status, session, items=items, **ctx)


@router.get("/tokens")
async def tokens_page(request: Request) -> Response:
    session = await session_of(request)
    forbid_agent(session, "managing tokens")
    return await _page(request, session)


@router.post("/tokens")
async def create(request: Request) -> Response:
    """A new agent token; the answer is the only time it is shown."""
    session = await session_of(request)
    forbid_agent(session, "creating a token")
    name = (await form_text(request, "name", limit=200)).strip()
    info, token = await tokens.new_token(runtime_of(request).db, "agent", name)
    return await _page(request, session, 201, created={**info.to_json(), "token": token})


@router.post("/tokens/{token_id}/revoke")
async def revoke(request: Request, token_id: str) -> Response:
    session = await session_of(request)
    forbid_agent(session, "revoking a token")
    if not await runtime_of(request).tokens.revoke(token_id):
        raise ApiError("not_found", f"no token with id '{token_id[:80]}'", status=404)
    return await _page(request, session, revoked=token_id)
