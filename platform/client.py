"""A Python client for Bollard's HTTP API (DESIGN §8, §9): ``from bollard.platform.client import Client``.

:class:`Client` (sync) and :class:`AsyncClient` (asyncio) over httpx, with the same
methods: :meth:`~Client.integrations`, :meth:`~Client.tools`, :meth:`~Client.call`,
:meth:`~Client.test`, :meth:`~Client.approvals`, :meth:`~Client.approval`,
:meth:`~Client.approve`, :meth:`~Client.reject`, and :func:`for_model` for results
handed to a model::

    with Client("http://127.0.0.1:8000", token) as bollard:
        rows = bollard.call("hotel", "list_reservations", {"status": "confirmed"})["data"]
        done = bollard.call("hotel", "cancel_reservation", {"id": 8}, wait_for_approval=600)

Every error the API answers is raised as a :class:`BollardClientError` built from its JSON
body (``code``, ``message``, ``details``, ``status``), of the subclass of its family:
:class:`AuthError` (401, 403), :class:`NotFoundError` (404), :class:`InvalidRequestError`
(400, 405, 413, 415, 422), :class:`ConflictError` (409) and under it
:class:`ApprovalError` (``approval_*`` codes, a rejected or still pending approval),
:class:`RateLimitedError` (429, with ``retry_after`` seconds), :class:`UpstreamError` (the
integration's side failed: 502, 504, ``host_not_allowed``, ``read_only``) and
:class:`ServerError` (500, 503, or no usable answer); :class:`TransportError` when Bollard
cannot be reached at all.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bollard.platform.client_errors import (
    ApprovalError,
    AuthError,
    BollardClientError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    UpstreamError,
    error_from,
)
from bollard.platform.model_results import DEFAULT_MAX_CHARS, cap_for_model

__all__ = [
    "ApprovalError",
    "AsyncClient",
    "AuthError",
    "BollardClientError",
    "Client",
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
    "UpstreamError",
    "error_from",
    "for_model",
    "outcome",
]

FINAL = ("succeeded", "failed", "rejected", "expired")
MAX_POLL_S = 60.0  # the server's longest ?wait=
HTTP_MARGIN_S = 30.0  # beyond the call's own time limit, before the HTTP request gives up
DEFAULT_HTTP_TIMEOUT_S = 150.0  # above the default operator ceiling of 120 s wall time


def outcome(approval: dict[str, Any]) -> dict[str, Any]:
    """The result envelope of a decided approval; raises for any other ending.

    ``succeeded`` → ``approval["result"]``; ``failed`` → the run's error (its family);
    ``rejected`` → :class:`ApprovalError` ``approval_rejected`` (``reason``); ``expired``
    → :class:`ApprovalError` ``approval_expired``/``approval_stale``; still undecided →
    :class:`ApprovalError` ``approval_pending``.
    """
    status, aid = approval.get("status"), approval.get("id")
    if status == "succeeded":
        result: dict[str, Any] = approval.get("result") or {}
        return result
    if status == "failed":
        raise error_from(0, {"error": approval.get("error") or {"code": "internal_error", "message": ""}})
    if status == "rejected":
        why = f": {approval['reason']}" if approval.get("reason") else ""
        raise ApprovalError(
            "approval_rejected", f"approval {aid} was rejected{why}", approval=approval, status=409
        )
    if status == "expired":
        err = approval.get("error") or {}
        code = str(err.get("code") or "approval_expired")
        raise ApprovalError(
            code, str(err.get("message") or "the approval expired"), approval=approval, status=409
        )
    raise ApprovalError(
        "approval_pending",
        f"approval {aid} is still {status}; wait longer with approval('{aid}', wait=60)",
        approval=approval,
        status=202,
    )


def for_model(result: Any, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """``result`` cut to at most ``max_chars`` characters of JSON for a model's context,
    still valid JSON, with ``truncated: true`` when cut (``bollard.platform.model_results``)."""
    return cap_for_model(result, max_chars)


def _decode(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        raise error_from(response.status_code, body, response.headers)
    if body is None:
        raise ServerError(
            "bad_response", f"HTTP {response.status_code} without a JSON body", status=response.status_code
        )
    return body


def _transport_error(e: httpx.TransportError) -> TransportError:
    code = "timeout" if isinstance(e, httpx.TimeoutException) else "network_error"
    return TransportError(code, f"cannot reach Bollard: {type(e).__name__}: {e}")


Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments


class _Requests:
    """The request of each method, shared by both clients."""

    @staticmethod
    def invoke(
        slug: str,
        operation: str,
        params: dict[str, Any] | None,
        credential_id: str | None,
        timeout: float | None,
    ) -> Request:
        body: dict[str, Any] = {"params": params or {}}
        kw: dict[str, Any] = {"json": body}
        if credential_id is not None:
            body["credentialId"] = credential_id
        if timeout is not None:
            body["timeoutMs"] = max(1, int(timeout * 1000))
            kw["timeout"] = timeout + HTTP_MARGIN_S
        return "POST", f"/api/integrations/{slug}/operations/{operation}", kw

    @staticmethod
    def approval(approval_id: str, wait: float | None) -> Request:
        kw: dict[str, Any] = {}
        if wait:
            wait = min(max(0.0, wait), MAX_POLL_S)
            kw = {"params": {"wait": round(wait, 3)}, "timeout": wait + HTTP_MARGIN_S}
        return "GET", f"/api/approvals/{approval_id}", kw

    @staticmethod
    def approvals(status: str | None, integration: str | None, limit: int) -> Request:
        query = {"status": status, "integration": integration, "limit": limit}
        return "GET", "/api/approvals", {"params": {k: v for k, v in query.items() if v is not None}}

    @staticmethod
    def test(slug: str, values: dict[str, Any] | None) -> Request:
        return "POST", f"/api/integrations/{slug}/test", {"json": {"values": values}}

    @staticmethod
    def reject(approval_id: str, reason: str | None) -> Request:
        return "POST", f"/api/approvals/{approval_id}/reject", {"json": {"reason": reason}}


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _held(body: dict[str, Any], wait_for_approval: float | None) -> str | None:
    """The approval id to wait for, when the call was held and the caller waits."""
    if body.get("status") == "pending" and wait_for_approval is not None:
        return str(body["approvalId"])
    return None


class Client:
    """Bollard over HTTP, synchronously.

    ``base_url`` like ``http://127.0.0.1:8000``; ``token`` an API token (``bollard token
    create --role agent``); ``timeout`` the HTTP timeout in seconds (a call's own
    ``timeout`` and long polls extend it); ``transport`` an httpx transport. Use it as a
    context manager, or :meth:`close` it.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_HTTP_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers=_headers(token), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, request: Request) -> Any:
        method, path, kw = request
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise _transport_error(e) from None
        return _decode(response)

    def integrations(self) -> list[dict[str, Any]]:
        """The catalog: ``[{slug, status, title, description, version, type, authMethod,
        operations: [{name, title, operationType, requiresApproval}], …}]`` (DESIGN §8)."""
        rows: list[dict[str, Any]] = self._send(("GET", "/api/integrations", {}))["integrations"]
        return rows

    def integration(self, slug: str) -> dict[str, Any]:
        """One integration with its operations' parameter schemas; :class:`NotFoundError`."""
        detail: dict[str, Any] = self._send(("GET", f"/api/integrations/{slug}", {}))
        return detail

    def tools(self, format: str = "openai") -> list[dict[str, Any]]:
        """Tool definitions for a model: ``openai`` | ``anthropic`` | ``mcp`` (DESIGN §9)."""
        tools: list[dict[str, Any]] = self._send(("GET", "/api/tools", {"params": {"format": format}}))[
            "tools"
        ]
        return tools

    def call(
        self,
        slug: str,
        operation: str,
        params: dict[str, Any] | None = None,
        *,
        credential_id: str | None = None,
        timeout: float | None = None,
        wait_for_approval: float | None = None,
    ) -> dict[str, Any]:
        """Run ``slug``'s ``operation`` with ``params``.

        Returns the result envelope ``{"success": true, "integration", "operation",
        "version", "data", "count"?, "truncated"?, "rowsAffected"?, "durationMs"}``. A
        call held for a person's approval returns the pending body ``{"status":
        "pending", "approvalId", "approval", "message", …}`` — unless ``wait_for_approval``
        (seconds) is given: then it long-polls and returns the envelope once a person
        approved and it ran (:func:`outcome` says what it raises otherwise). ``timeout``
        (seconds) lowers the call's wall-time limit; ``credential_id`` picks a stored
        credential. Raises the :class:`BollardClientError` of the API's error code.
        """
        body: dict[str, Any] = self._send(_Requests.invoke(slug, operation, params, credential_id, timeout))
        held = _held(body, wait_for_approval)
        if held is None:
            return body
        deadline = time.monotonic() + (wait_for_approval or 0.0)
        while True:
            remaining = deadline - time.monotonic()
            approval = self.approval(held, wait=max(0.0, remaining))
            if approval["status"] in FINAL or remaining <= MAX_POLL_S:
                return outcome(approval)

    def test(self, slug: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Test connection (admin): ``{ok, message, steps, durationMs}``; ``values`` tests
        unsaved credential values first."""
        report: dict[str, Any] = self._send(_Requests.test(slug, values))
        return report

    def approvals(
        self, *, status: str | None = None, integration: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Approvals, newest first (an agent sees its own): ``[{id, status, integration,
        operation, params, summary, requestedAt, expiresAt, result?, error?, reason}]``."""
        found: list[dict[str, Any]] = self._send(_Requests.approvals(status, integration, limit))["approvals"]
        return found

    def approval(self, approval_id: str, *, wait: float | None = None) -> dict[str, Any]:
        """One approval; ``wait`` (seconds, at most 60 per request) long-polls until it is
        final (``succeeded``, ``failed``, ``rejected``, ``expired``). :class:`NotFoundError`."""
        approval: dict[str, Any] = self._send(_Requests.approval(approval_id, wait))
        return approval

    def approve(self, approval_id: str) -> dict[str, Any]:
        """Approve and run it (admin); answers the approval with its ``result``. Raises
        :class:`ApprovalError` (decided, expired, stale) or :class:`AuthError`."""
        approval: dict[str, Any] = self._send(("POST", f"/api/approvals/{approval_id}/approve", {}))
        return approval

    def reject(self, approval_id: str, reason: str | None = None) -> dict[str, Any]:
        """Reject it (admin) with an optional ``reason`` shown with the approval."""
        approval: dict[str, Any] = self._send(_Requests.reject(approval_id, reason))
        return approval

    @staticmethod
    def for_model(result: Any, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
        """:func:`for_model`."""
        return for_model(result, max_chars)


class AsyncClient:
    """Bollard over HTTP with asyncio: :class:`Client`'s methods, each a coroutine.

    ``transport`` may be ``httpx.ASGITransport(app=…)`` to talk to an app in process.
    Use it as an async context manager, or :meth:`aclose` it.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_HTTP_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(token), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, request: Request) -> Any:
        method, path, kw = request
        try:
            response = await self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise _transport_error(e) from None
        return _decode(response)

    async def integrations(self) -> list[dict[str, Any]]:
        """:meth:`Client.integrations`."""
        rows: list[dict[str, Any]] = (await self._send(("GET", "/api/integrations", {})))["integrations"]
        return rows

    async def integration(self, slug: str) -> dict[str, Any]:
        """:meth:`Client.integration`."""
        detail: dict[str, Any] = await self._send(("GET", f"/api/integrations/{slug}", {}))
        return detail

    async def tools(self, format: str = "openai") -> list[dict[str, Any]]:
        """:meth:`Client.tools`."""
        body = await self._send(("GET", "/api/tools", {"params": {"format": format}}))
        tools: list[dict[str, Any]] = body["tools"]
        return tools

    async def call(
        self,
        slug: str,
        operation: str,
        params: dict[str, Any] | None = None,
        *,
        credential_id: str | None = None,
        timeout: float | None = None,
        wait_for_approval: float | None = None,
    ) -> dict[str, Any]:
        """:meth:`Client.call`."""
        body: dict[str, Any] = await self._send(
            _Requests.invoke(slug, operation, params, credential_id, timeout)
        )
        held = _held(body, wait_for_approval)
        if held is None:
            return body
        deadline = time.monotonic() + (wait_for_approval or 0.0)
        while True:
            remaining = deadline - time.monotonic()
            approval = await self.approval(held, wait=max(0.0, remaining))
            if approval["status"] in FINAL or remaining <= MAX_POLL_S:
                return outcome(approval)

    async def test(self, slug: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`Client.test`."""
        report: dict[str, Any] = await self._send(_Requests.test(slug, values))
        return report

    async def approvals(
        self, *, status: str | None = None, integration: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """:meth:`Client.approvals`."""
        body = await self._send(_Requests.approvals(status, integration, limit))
        found: list[dict[str, Any]] = body["approvals"]
        return found

    async def approval(self, approval_id: str, *, wait: float | None = None) -> dict[str, Any]:
        """:meth:`Client.approval`."""
        approval: dict[str, Any] = await self._send(_Requests.approval(approval_id, wait))
        return approval

    async def approve(self, approval_id: str) -> dict[str, Any]:
        """:meth:`Client.approve`."""
        approval: dict[str, Any] = await self._send(("POST", f"/api/approvals/{approval_id}/approve", {}))
        return approval

    async def reject(self, approval_id: str, reason: str | None = None) -> dict[str, Any]:
        """:meth:`Client.reject`."""
        approval: dict[str, Any] = await self._send(_Requests.reject(approval_id, reason))
        return approval

    @staticmethod
    def for_model(result: Any, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
        """:func:`for_model`."""
        return for_model(result, max_chars)
