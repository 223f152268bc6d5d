"""The security headers of every web page response (DESIGN §13).

A strict Content-Security-Policy: scripts and styles only from this origin (the vendored
htmx and Pico CSS and the page's own small script; no inline script, no ``eval``), no
plugins, no framing, forms and fetches to this origin only. Plus ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer``, ``nosniff`` and no caching of pages that show state.
"""

from __future__ import annotations

from starlette.responses import Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def apply(response: Response, *, cache: bool = False) -> Response:
    """Set :data:`HEADERS` (and ``Cache-Control: no-store`` unless ``cache``) on ``response``;
    a header the route set itself (an icon's stricter CSP, its caching) is kept."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not cache:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
