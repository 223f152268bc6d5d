"""The one error tree of the host: every error a caller can see, with its code and status.

Every platform error carries a stable machine-readable ``code`` (DESIGN §8), a ``message``
that says what went wrong and what would fix it (never a secret), an HTTP ``status``
(from :data:`STATUS_BY_CODE` unless the raiser says otherwise), optional structured
``details`` (for example every failing parameter path) and extra response ``headers``
(``Retry-After``). One FastAPI handler (``api/errors.py``) turns any of them into
``{"error": {"code", "message", "details"?}}``; the CLI prints ``code: message``.

The hierarchy (modelled on httpx's ``_exceptions.py``)::

    BollardError
    ├── ApiError               a request the API refuses before any service runs
    │                          (authentication, roles, body shape, filters)
    ├── IntegrationUnavailable no such integration, or it never loaded (Registry.require)
    ├── ExecutionError         a call that did not run or failed (execution service)
    │   └── SqlError           the SQL runner's failures (sql_error, timeout, read_only, …)
    ├── CredentialError        a credential that cannot be stored or read
    ├── ApprovalError          an approval decision that cannot be made
    ├── OAuth2Error            the OAuth2 authorisation flow (DESIGN §7)
    │   └── TokenEndpointError the provider's token endpoint failed or refused
    └── ValidationFailed       an integration package or manifest that is invalid
        ├── PackageError       (``errors``: every reason, each naming the file or field)
        ├── ManifestError      (``issues``: every problem, each with its field path)
        └── ScaffoldError      ``bollard new`` cannot write the scaffold

The sandbox has its own tree (``bollard.sandbox.errors``); the execution service turns
those into :class:`ExecutionError` with the same code.
"""

from __future__ import annotations

from typing import Any

# HTTP status for each error code (DESIGN §8). A code not listed answers 500.
STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "invalid_request": 400,
    "invalid_params": 400,
    "invalid_credential": 400,
    "invalid_package": 400,
    "invalid_manifest": 400,
    "no_mock": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "read_only": 403,
    "host_not_allowed": 403,
    "not_found": 404,
    "unknown_integration": 404,
    "unknown_operation": 404,
    "unknown_credential": 404,
    "unknown_approval": 404,
    "unknown_execution": 404,
    "unknown_file": 404,
    "unknown_token": 404,
    "method_not_allowed": 405,
    "integration_error": 409,
    "needs_credentials": 409,
    "approval_expired": 409,
    "approval_stale": 409,
    "approval_decided": 409,
    "conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "limit_exceeded": 422,
    "rate_limited": 429,
    "too_many_concurrent": 429,
    "internal_error": 500,
    "config_error": 500,
    "credentials_unreadable": 500,
    "connector_error": 502,
    "network_error": 502,
    "sql_error": 502,
    "connection_failed": 502,
    "oauth2_error": 502,
    "bad_response": 502,
    "sandbox_unavailable": 503,
    "timeout": 504,
}


def status_for(code: str) -> int:
    """The HTTP status of an error ``code`` (500 for a code not in the table)."""
    return STATUS_BY_CODE.get(code, 500)


class BollardError(Exception):
    """The base of every platform error: ``code``, ``message``, ``status``, ``details``,
    ``headers`` (see the module docstring)."""

    default_code = "internal_error"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        *,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code: str = code or self.default_code
        self.message = message or self.code.replace("_", " ")
        super().__init__(self.message)
        self.status = status if status is not None else status_for(self.code)
        self.details = details
        self.headers = headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def body(self) -> dict[str, Any]:
        """The JSON error body ``{"error": {"code", "message", "details"?}}`` (DESIGN §8)."""
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "details"?}}`` (DESIGN §8)."""
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"error": err}


class ApiError(BollardError):
    """A request the API refuses before any service runs (auth, roles, body, filters)."""

    default_code = "invalid_request"


class IntegrationUnavailable(BollardError):
    """``unknown_integration`` (404: no such folder) or ``integration_error`` (409: the
    folder never loaded, so no version serves)."""

    default_code = "unknown_integration"


class ExecutionError(BollardError):
    """A call that did not run or failed; ``code`` is a DESIGN §8 envelope error code."""


class SqlError(ExecutionError):
    """A failed SQL call (DESIGN §5, §8).

    Codes: ``sql_error`` (the database refused the statement), ``timeout`` (server or
    client deadline), ``read_only`` (a write where only reads are allowed),
    ``connection_failed`` (could not connect or log in), ``invalid_params`` (a value
    could not be converted to its declared type), ``config_error`` (the connection
    settings themselves are unusable, e.g. a sqlite path outside the allowed folders).
    The message never contains the password or the connection URL.
    """

    default_code = "sql_error"


class CredentialError(BollardError):
    """A credential request that cannot be served (``invalid_credential``,
    ``unknown_credential``, ``credentials_unreadable``)."""

    default_code = "invalid_credential"


class ApprovalError(BollardError):
    """An approval decision that cannot be made (``unknown_approval``,
    ``approval_decided``, ``approval_expired``, ``approval_stale``, ``forbidden``)."""

    default_code = "approval_decided"


class OAuth2Error(BollardError):
    """A failed step of the OAuth2 authorisation flow (DESIGN §7); never carries a secret."""

    default_code = "oauth2_error"


class TokenEndpointError(OAuth2Error):
    """A token request that failed: ``code`` is ``oauth2_error`` (the provider answered an
    RFC 6749 §5.2 error, in ``error``), ``bad_response``, ``host_not_allowed``,
    ``network_error``, ``timeout`` or ``limit_exceeded``."""

    def __init__(self, code: str, message: str, error: str | None = None) -> None:
        super().__init__(code, message)
        self.error = error


class ValidationFailed(BollardError):
    """An integration package, manifest or scaffold that is invalid."""

    default_code = "invalid_package"


class PackageError(ValidationFailed):
    """The package is invalid; ``errors`` lists every reason, each naming the file or field."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("invalid_package", "; ".join(errors), details=errors)


class ScaffoldError(ValidationFailed):
    """``bollard new`` cannot write the scaffold (bad slug, folder exists)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_request", message)
