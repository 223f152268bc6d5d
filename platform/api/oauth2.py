"""OAuth2 authorisation endpoints (DESIGN §7, §8; RFC 6749 §4.1, RFC 7636).

- ``GET /api/integrations/{slug}/oauth2/authorize[?credentialId=…][&format=json]``
  (admin): 302 to the provider's authorization URL, or ``{"authorizeUrl", …}`` with
  ``format=json`` (the web page fetches it with its token, then navigates).
- ``GET /api/integrations/oauth2/callback?code=…&state=…`` (no bearer token: the
  provider redirects the browser here; the signed, single-use state is the
  authentication): stores the tokens and answers a small HTML page, or JSON when the
  client asks for it (``Accept: application/json`` or ``format=json``). It never shows a
  token.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bollard.platform import tokens
from bollard.platform.api.deps import admin, get_runtime
from bollard.platform.api.openapi import ADMIN, errors, html_or_json
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.errors import OAuth2Error, error_body
from bollard.platform.runtime import Runtime
from bollard.platform.timestamps import iso_utc

router = APIRouter(prefix="/api/integrations", tags=["oauth2"])

# The callback URL carries the authorisation code: keep it out of caches and referrers.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@router.get(
    "/oauth2/callback",
    summary="OAuth2 redirect target (the provider sends the browser here)",
    response_class=HTMLResponse,
    responses=html_or_json(
        400, 403, 404, 409, 422, 500, 502, 504, ok="authorised: a page, or JSON when asked"
    ),
)
async def callback(
    request: Request,
    code: str | None = Query(None, max_length=4096),
    state: str | None = Query(None, max_length=4096),
    error: str | None = Query(None, max_length=200),
    error_description: str | None = Query(None, max_length=2000),
    format: str | None = Query(None, pattern="^(json|html)$"),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    as_json = wants_json(request, format)
    try:
        done = await runtime.oauth2.complete_authorization(
            state=state, code=code, error=error, error_description=error_description
        )
    except OAuth2Error as e:
        if as_json:
            return JSONResponse(error_body(e.code, e.message), status_code=e.status, headers=PAGE_HEADERS)
        return HTMLResponse(
            page("Authorisation failed", e.message), status_code=e.status, headers=PAGE_HEADERS
        )
    body: dict[str, Any] = {
        "ok": True,
        "integration": done.slug,
        "credentialId": done.credential_id,
        "scope": done.scope,
        "expiresAt": iso_utc(done.expires_at),
        "hasRefreshToken": done.has_refresh_token,
        "message": f"integration '{done.slug}' is authorised (credential '{done.credential_id}')",
    }
    if as_json:
        return JSONResponse(body, headers=PAGE_HEADERS)
    return HTMLResponse(
        page("Authorised", body["message"] + ". You can close this window."), headers=PAGE_HEADERS
    )


@router.get(
    "/{slug}/oauth2/authorize",
    summary="Start the OAuth2 authorisation: redirect to the provider (PKCE S256, signed state)",
    responses={
        200: {"description": "with format=json: the authorization URL to navigate to"},
        302: {"description": "redirect to the provider's authorization URL"},
        **errors(*ADMIN, "bad_request", "unknown_integration", "integration_error", "needs_credentials"),
    },
    response_model=None,
)
async def authorize(
    slug: str,
    credential_id: str = Query(DEFAULT_CREDENTIAL_ID, alias="credentialId", max_length=64),
    format: str | None = Query(None, pattern="^(json|redirect)$"),
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> Response | dict[str, Any]:
    started = await runtime.oauth2.start_authorization(slug, credential_id)
    if format == "json":
        return {
            "authorizeUrl": started.url,
            "integration": started.slug,
            "credentialId": started.credential_id,
            "redirectUri": started.redirect_uri,
            "expiresAt": iso_utc(started.expires_at),
        }
    return RedirectResponse(started.url, status_code=302, headers={"Cache-Control": "no-store"})


def wants_json(request: Request, format: str | None) -> bool:
    """JSON for ``format=json`` or an ``Accept`` naming JSON but not HTML (browsers send HTML)."""
    if format is not None:
        return format == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def page(title: str, message: str) -> str:
    """A minimal self-contained HTML page (everything escaped)."""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>Bollard: {html.escape(title)}</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
