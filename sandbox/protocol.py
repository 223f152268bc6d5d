"""Messages exchanged between the host and a sandbox worker, and the HTTP shapes.

The worker never performs network I/O (DESIGN §4.3): ``ctx.http.*`` in connector
code becomes an :class:`HttpRequest` sent over the worker's pipe; the host applies
its egress policy, performs the request and answers with an :class:`HttpResponse`.
Both are plain data with exact types so the host can treat every message from the
worker as hostile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class HttpRequest:
    """One ``ctx.http.<method>(...)`` call as the host receives it.

    - ``method``: one of :data:`HTTP_METHODS`.
    - ``url``: the absolute URL the connector asked for (not yet checked).
    - ``headers``: header names and values, both ``str``.
    - ``params``: query parameters to append (values already ``str`` or lists of ``str``).
    - ``json``: a JSON-serialisable body, sent as ``application/json``; or
    - ``body``: a text body; or
    - ``binary_body``: raw bytes (the connector passes base64 text, decoded in the worker).
    - ``response_type``: ``None`` (JSON for JSON content types, text otherwise) or
      ``"base64"`` (the body comes back base64-encoded) or ``"text"``.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    json: Any = None
    body: str | None = None
    binary_body: bytes | None = None
    response_type: str | None = None


@dataclass(frozen=True)
class HttpResponse:
    """The host's answer to an :class:`HttpRequest`.

    ``headers`` keys are lower-case. ``body`` holds the raw response bytes (already
    capped at the per-request response limit); the worker turns it into JSON, text
    or base64 text for the connector according to ``response_type`` and the
    content type. ``url`` is the final URL after redirects.
    """

    status: int
    status_text: str
    headers: dict[str, str]
    body: bytes
    url: str = ""


class HttpRequestRefused(Exception):
    """Raised by the host's HTTP handler when a request is refused or fails.

    ``code`` is one of the result-envelope error codes of DESIGN §8
    (``host_not_allowed``, ``limit_exceeded``, ``network_error``, ``timeout``);
    ``message`` is safe to show to the connector and the caller (no secrets).
    The worker re-raises it inside connector code as a catchable exception.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
