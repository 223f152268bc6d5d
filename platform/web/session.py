"""The web page's session: a signed, expiring cookie naming a token, and its CSRF token
(DESIGN §13).

Logging in with an API token stores ``{"t": <token id>, "c": <csrf>}`` in the cookie
``bollard_session``, signed (HMAC-SHA256, timestamped) with itsdangerous; the cookie is
``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and expires after ``SESSION_TTL_S``. The token
itself is never in the cookie: each request looks the token id up, so revoking a token
ends its sessions at once. The signing key is derived from the credential key (DESIGN §7)
and so survives restarts; rotating the key logs everyone out.

CSRF: every unsafe request carries the session's CSRF token in the form field ``csrf``
or the header ``X-CSRF-Token`` (htmx sends the header on every request); the login form,
made before any session exists, carries the one of a short-lived signed ``bollard_login``
cookie (double submit). Both comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from bollard.platform.runtime import Runtime, secret_keys
from bollard.platform.store.tables import api_tokens
from bollard.platform.tokens import Principal

SESSION_COOKIE = "bollard_session"
LOGIN_COOKIE = "bollard_login"
SESSION_TTL_S = 8 * 3600  # a working day; then log in again
LOGIN_TTL_S = 3600  # how long a login form stays usable (s)
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class LoginRequired(Exception):
    """No valid session: the page answers the login form (or, to htmx, a redirect)."""


class CsrfRefused(Exception):
    """An unsafe request without the session's CSRF token: 403."""


@dataclass(frozen=True)
class Session:
    """A logged-in browser: who (the token's principal) and its CSRF token."""

    principal: Principal
    csrf: str


def _serializer(runtime: Runtime, salt: str) -> URLSafeTimedSerializer:
    key: bytes | None = getattr(runtime, "_web_signing_key", None)
    if key is None:
        primary = secret_keys(runtime.settings)[0]
        # a key of its own, derived from the credential key: a session cookie can never
        # be mistaken for anything the credential store signs
        key = hmac.new(primary.encode(), b"bollard web session v1", hashlib.sha256).digest()
        runtime._web_signing_key = key  # type: ignore[attr-defined]
    return URLSafeTimedSerializer(key, salt=salt)


def secure_cookies(request: Request) -> bool:
    """``Secure`` cookies when the page is served over HTTPS (a plain-HTTP ``make run``
    on 127.0.0.1 could not log in with them)."""
    return request.url.scheme == "https"


def _set(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


async def _principal_by_id(runtime: Runtime, token_id: str) -> Principal | None:
    c = api_tokens.c
    async with runtime.db.connect() as conn:
        row = (await conn.execute(select(c.id, c.name, c.role).where(c.id == token_id))).first()
    return None if row is None else Principal(token_id=row[0], name=row[1], role=row[2])


async def read_session(request: Request, runtime: Runtime) -> Session | None:
    """The request's session, or ``None`` (no cookie, a bad or expired signature, or a
    revoked token)."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > 4096:
        return None
    try:
        data: Any = _serializer(runtime, "session").loads(raw, max_age=SESSION_TTL_S)
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("c"), str):
        return None
    principal = await _principal_by_id(runtime, data["t"])
    return None if principal is None else Session(principal, data["c"])


async def require_session(request: Request, runtime: Runtime) -> Session:
    """The session, checking CSRF on unsafe methods; raises :class:`LoginRequired` or
    :class:`CsrfRefused`."""
    session = await read_session(request, runtime)
    if session is None:
        raise LoginRequired()
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, session.csrf)
    return session


async def check_csrf(request: Request, expected: str) -> None:
    """Raise :class:`CsrfRefused` unless the header or form field carries ``expected``."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused()
    origin = request.headers.get("origin")
    if origin and origin != "null":
        public = request.app.state.runtime.settings.public_url
        allowed = {str(request.base_url).rstrip("/"), (public or "").rstrip("/")}
        if origin.rstrip("/") not in allowed:
            raise CsrfRefused()  # a cross-site form post that somehow carried the token


def start_session(response: Response, request: Request, runtime: Runtime, principal: Principal) -> None:
    """Set the session cookie for ``principal`` with a fresh CSRF token (a new session id
    at each login: no fixation)."""
    value = _serializer(runtime, "session").dumps({"t": principal.token_id, "c": secrets.token_urlsafe(32)})
    _set(response, request, SESSION_COOKIE, value, SESSION_TTL_S)
    response.delete_cookie(LOGIN_COOKIE, path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def login_csrf(runtime: Runtime) -> tuple[str, str]:
    """A CSRF token for the login form and the signed ``bollard_login`` cookie value
    that binds it (set it with :func:`set_login_cookie`)."""
    token = secrets.token_urlsafe(32)
    return token, _serializer(runtime, "login").dumps(token)


def set_login_cookie(response: Response, request: Request, value: str) -> None:
    _set(response, request, LOGIN_COOKIE, value, LOGIN_TTL_S)


async def check_login_csrf(request: Request, runtime: Runtime, sent: str | None) -> None:
    """Raise :class:`CsrfRefused` unless ``sent`` matches the login cookie's token."""
    raw = request.cookies.get(LOGIN_COOKIE, "")
    try:
        expected = _serializer(runtime, "login").loads(raw, max_age=LOGIN_TTL_S) if raw else ""
    except BadSignature:
        expected = ""
    if not isinstance(expected, str) or not expected or not sent:
        raise CsrfRefused()
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused()
