"""Log in with an API token, log out (DESIGN §13)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from bollard.platform.web.base import WebRoute, form_text, render, runtime_of
from bollard.platform.web.session import (
    check_login_csrf,
    end_session,
    login_csrf,
    read_session,
    require_session,
    set_login_cookie,
    start_session,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _next(value: str | None) -> str:
    """Only a local path (``/…``, not ``//host``): no open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:500]
    return "/"


def _login_page(request: Request, status: int = 200, error: str | None = None, nxt: str = "/") -> Response:
    token, cookie = login_csrf(runtime_of(request))
    response = render(request, "login.html", status, None, error=error, next=nxt, login_csrf=token)
    set_login_cookie(response, request, cookie)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await read_session(request, runtime_of(request)) is not None:
        return RedirectResponse(_next(next), status_code=303)
    return _login_page(request, nxt=_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    rt = runtime_of(request)
    await check_login_csrf(request, rt, await form_text(request, "csrf", limit=200))
    token = (await form_text(request, "token", limit=300)).strip()
    nxt = _next(await form_text(request, "next", limit=500))
    principal = await rt.tokens.authenticate(token) if token else None
    if principal is None:
        return _login_page(request, 401, "unknown or revoked token", nxt)
    response = RedirectResponse(nxt, status_code=303)
    start_session(response, request, rt, principal)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await require_session(request, runtime_of(request))  # CSRF: no one logs you out from elsewhere
    response = RedirectResponse("/login", status_code=303)
    end_session(response)
    return response
