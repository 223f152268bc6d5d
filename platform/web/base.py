"""What every web route shares: the route class (security headers, login and error
pages), the Jinja2 environment and the render helpers (DESIGN §13)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bollard.platform.errors import BollardError
from bollard.platform.runtime import Runtime
from bollard.platform.web import headers
from bollard.platform.web.markdown import render_markdown
from bollard.platform.web.session import CsrfRefused, LoginRequired, Session, require_session

log = logging.getLogger("bollard.web")
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["markdown"] = lambda text: Markup(render_markdown(text or ""))  # sanitised by nh3
MAX_SHOWN_CHARS = 100_000  # of a JSON value on a page; the API has the whole result


def pretty(value: Any) -> str:
    """``value`` as indented JSON, cut at :data:`MAX_SHOWN_CHARS` characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > MAX_SHOWN_CHARS:
        return text[:MAX_SHOWN_CHARS] + f"\n… ({len(text) - MAX_SHOWN_CHARS} more characters: see the API)"
    return text


env.filters["pretty"] = pretty


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request, template: str, status: int = 200, session: Session | None = None, **ctx: Any
) -> HTMLResponse:
    """Render ``template`` with ``ctx``, the session (its principal and CSRF token) and the
    current path; the route class adds the security headers."""
    html = env.get_template(template).render(
        request=request,
        session=session,
        user=session.principal if session else None,
        csrf=session.csrf if session else "",
        path=request.url.path,
        **ctx,
    )
    return HTMLResponse(html, status_code=status)


def error_response(
    request: Request, status: int, code: str, message: str, session: Session | None
) -> Response:
    """An error as a page, or as a fragment for htmx (swapped where the result goes)."""
    template = "parts/error.html" if is_htmx(request) else "error.html"
    return render(request, template, status, session, code=code, message=message)


def login_redirect(request: Request) -> Response:
    """Where a request without a session goes: the login page, then back here."""
    target = "/login"
    if request.method == "GET" and request.url.path not in ("/", "/login"):
        target += "?next=" + quote(request.url.path, safe="/")
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    if request.method == "GET":
        return RedirectResponse(target, status_code=303)
    return render(request, "error.html", 401, None, code="unauthorized", message="log in first")


class WebRoute(APIRoute):
    """A page route: security headers on every answer; no session → the login page;
    a CSRF refusal → 403; a platform error → its status with the message as a page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except LoginRequired:
                response = login_redirect(request)
            except CsrfRefused:
                response = error_response(
                    request,
                    403,
                    "forbidden",
                    "the form's CSRF token is missing or wrong: reload the page",
                    None,
                )
            except BollardError as e:
                session = getattr(request.state, "web_session", None)
                response = error_response(request, e.status, e.code, e.message, session)
            finally:
                await request.close()  # a parsed form's uploaded files (temporary files)
            return headers.apply(response)

        return handler


async def session_of(request: Request) -> Session:
    """The request's session (checks CSRF on unsafe methods); kept on ``request.state``
    for the error page."""
    session = await require_session(request, runtime_of(request))
    request.state.web_session = session
    return session


def forbid_agent(session: Session, what: str) -> None:
    """Refuse ``what`` unless the session's token is an admin's: the server decides, the
    page only hides the buttons (DESIGN §6, §13)."""
    if not session.principal.is_admin:
        from bollard.platform.errors import ApiError

        raise ApiError("forbidden", f"{what} needs an admin token; agent tokens cannot do it", status=403)


async def form_text(request: Request, name: str, default: str = "", limit: int = 10_000) -> str:
    """A text field of the request's form (``default`` when missing), cut at ``limit``."""
    value = (await request.form()).get(name)
    return value[:limit] if isinstance(value, str) else default
