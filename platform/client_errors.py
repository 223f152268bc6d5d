"""The typed errors of :mod:`bollard.platform.client`, one family per kind of failure.

Built from the API's JSON error body ``{"error": {"code", "message", "details"?}}`` (DESIGN
§8) by :func:`error_from`; the family comes from the error code's HTTP status
(``bollard.platform.errors.STATUS_BY_CODE``), with ``approval_*`` codes as
:class:`ApprovalError` and ``host_not_allowed``/``read_only`` as :class:`UpstreamError`::

    BollardClientError
    ├── AuthError            401, 403
    ├── NotFoundError        404
    ├── InvalidRequestError  400, 405, 413, 415, 422
    ├── ConflictError        409
    │   └── ApprovalError    approval_* (also approval_rejected, approval_pending)
    ├── RateLimitedError     429 (retry_after)
    ├── UpstreamError        502, 504, host_not_allowed, read_only
    ├── ServerError          500, 503, anything else, an answer that is not Bollard's JSON
    └── TransportError       Bollard could not be reached
"""

from __future__ import annotations

from typing import Any

import httpx

from bollard.platform.errors import STATUS_BY_CODE


class BollardClientError(Exception):
    """An error from Bollard: ``code`` (DESIGN §8 error code), ``message`` (what went wrong
    and what would fix it), ``status`` (HTTP status, 0 when none), ``details`` (e.g. every
    failing parameter path), ``body`` (the whole JSON answer, when there was one)."""

    def __init__(
        self, code: str, message: str, *, status: int = 0, details: Any = None, body: Any = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.body = body


class AuthError(BollardClientError):
    """401 ``unauthorized`` (no, unknown or revoked token) or 403 ``forbidden`` (needs admin)."""


class NotFoundError(BollardClientError):
    """404: ``unknown_integration``, ``unknown_operation``, ``unknown_credential``, ``not_found``…"""


class InvalidRequestError(BollardClientError):
    """The request was refused as sent: ``invalid_request``, ``invalid_params`` (``details``
    lists ``{"path", "message"}``), ``no_mock``, ``payload_too_large``, ``limit_exceeded``…"""


class ConflictError(BollardClientError):
    """409: ``needs_credentials``, ``integration_error``, ``conflict``."""


class ApprovalError(ConflictError):
    """An approval that gives no result: ``approval_stale``, ``approval_expired``,
    ``approval_decided``, ``approval_rejected`` (a person rejected it: ``reason``) or
    ``approval_pending`` (still undecided when ``wait_for_approval`` ran out). ``approval``
    is the approval as the API shows it, when known."""

    def __init__(self, code: str, message: str, *, approval: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(code, message, **kw)
        self.approval = approval
        self.reason = approval.get("reason") if approval else None


class RateLimitedError(BollardClientError):
    """429 ``rate_limited`` or ``too_many_concurrent``; ``retry_after`` (seconds) from the
    ``Retry-After`` header when the server sent one."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(code, message, **kw)
        self.retry_after = retry_after


class UpstreamError(BollardClientError):
    """The integration's side failed: ``connector_error``, ``network_error``, ``sql_error``,
    ``connection_failed``, ``oauth2_error``, ``bad_response``, ``timeout``,
    ``host_not_allowed``, ``read_only``."""


class ServerError(BollardClientError):
    """500/503: ``internal_error`` (the message has an error id), ``config_error``,
    ``credentials_unreadable``, ``sandbox_unavailable``; or an answer that is not Bollard's JSON."""


class TransportError(BollardClientError):
    """Bollard could not be reached (connection refused, DNS, TLS, HTTP timeout): ``code``
    is ``network_error`` or ``timeout``, ``status`` 0."""


UPSTREAM_CODES = frozenset({"host_not_allowed", "read_only"})
FAMILY_BY_STATUS: dict[int, type[BollardClientError]] = {
    400: InvalidRequestError,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
    502: UpstreamError,
    504: UpstreamError,
}


def _retry_after(headers: httpx.Headers | None) -> float | None:
    try:
        return float(headers["retry-after"]) if headers and "retry-after" in headers else None
    except ValueError:
        return None


def error_from(status: int, body: Any, headers: httpx.Headers | None = None) -> BollardClientError:
    """The typed error for an answer of ``status`` with JSON ``body``
    (``{"error": {"code", "message", "details"?}}`` or a failed result envelope)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or "code" not in err:
        text = str(body)[:300] if body is not None else "no JSON body"
        return ServerError(
            "bad_response", f"HTTP {status} without Bollard's error body: {text}", status=status
        )
    code, message, details = str(err["code"]), str(err.get("message", "")), err.get("details")
    status = status or STATUS_BY_CODE.get(code, 500)
    kw: dict[str, Any] = {"status": status, "details": details, "body": body}
    if code.startswith("approval_"):
        return ApprovalError(code, message, **kw)
    if code in UPSTREAM_CODES:
        return UpstreamError(code, message, **kw)
    family = FAMILY_BY_STATUS.get(status, ServerError)
    if family is RateLimitedError:
        return RateLimitedError(code, message, retry_after=_retry_after(headers), **kw)
    return family(code, message, **kw)
