"""Invoking operations (DESIGN §8): ``POST /api/integrations/{slug}/operations/{operation}``."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from bollard.platform import tokens
from bollard.platform.api.deps import known_query, principal
from bollard.platform.api.openapi import AUTH, BODY, errors
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.errors import ApiError
from bollard.platform.invocation import Invocation
from bollard.platform.params import non_finite_problems
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/integrations", tags=["operations"], dependencies=[Depends(known_query)])


class InvokeBody(BaseModel):
    """``{"params": {…}, "credentialId": "default", "useMock": false, "timeoutMs": 10000}``."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="the operation's parameters")
    credentialId: str = Field(
        DEFAULT_CREDENTIAL_ID, max_length=64, description="which stored credential to use"
    )
    useMock: bool = Field(False, description="return the operation's mock result without any I/O")
    timeoutMs: int | None = Field(None, gt=0, description="lower the wall-time limit (ms)")
    retries: int = Field(
        0,
        ge=0,
        le=5,
        description=(
            "read operations without approval only (refused otherwise): retry network errors, 429 and 5xx"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _unknown_fields(cls, data: Any) -> Any:
        """Name unknown top-level fields, and say to nest parameters under ``params`` when
        the caller sent them bare (``{"status": "confirmed"}``)."""
        if not isinstance(data, dict):
            return data
        fields = list(cls.model_fields)
        unknown = [k for k in data if k not in fields]
        if not unknown:
            return data
        saw = ", ".join(repr(k)[:60] for k in unknown[:20])
        if "params" not in data:
            example = json.dumps({"params": {k: data[k] for k in unknown[:3]}}, default=str)[:200]
            raise PydanticCustomError(
                "params_wrapper",
                f'the operation\'s parameters go under "params": send {example} '
                f"(top-level keys seen: {saw}; the body's fields are {', '.join(fields)})",
            )
        raise PydanticCustomError(
            "unknown_field",
            f"unknown field(s) {saw}; the body's fields are {', '.join(fields)} "
            '(the operation\'s parameters go under "params")',
        )


class ResultEnvelope(BaseModel):
    """``{"success": true, "integration", "operation", "version", "data", "count"?,
    "truncated"?, "truncatedReason"?, "rowsAffected"?, "durationMs"}`` (DESIGN §8)."""

    success: bool
    integration: str
    operation: str
    version: int | None = None
    data: Any = None
    count: int | None = None
    truncated: bool | None = None
    truncatedReason: Literal["rows", "bytes"] | None = None
    rowsAffected: int | None = None
    durationMs: float | None = None


class PendingApproval(BaseModel):
    """The ``202`` body (DESIGN §6): ``status: "pending"``, the approval's id and the
    approval itself (what will run), and how to approve it. No ``success``: nothing ran."""

    status: str = Field(..., description='always "pending"')
    approvalId: str
    approval: dict[str, Any] = Field(..., description="as GET /api/approvals/{id} shows it")
    integration: str
    operation: str
    version: int | None = None
    message: str


def refuse_non_finite(params: dict[str, Any]) -> None:
    """Refuse the body when ``params`` holds ``NaN`` or ``±Infinity`` (400 ``invalid_request``
    naming each path): Python's JSON parser, which FastAPI uses, accepts those literals, but
    JSON has no such numbers and they pass ``minimum``/``maximum`` (DESIGN §8)."""
    problems = non_finite_problems(params)
    if problems:
        text = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:20])
        raise ApiError("invalid_request", f"the request body is not valid JSON for Bollard: {text}",
                       details=problems[:100], status=400)  # fmt: skip


# What a call can fail with, beyond authentication and the body (DESIGN §8).
INVOKE_ERRORS = (
    "invalid_params",
    "no_mock",
    "read_only",
    "host_not_allowed",
    "unknown_integration",
    "unknown_operation",
    "unknown_credential",
    "integration_error",
    "needs_credentials",
    "limit_exceeded",
    "rate_limited",
    "too_many_concurrent",
    "credentials_unreadable",
    "connector_error",
    "network_error",
    "sql_error",
    "connection_failed",
    "oauth2_error",
    "bad_response",
    "sandbox_unavailable",
    "timeout",
)


@router.post(
    "/{slug}/operations/{operation}",
    summary="Run an operation (200 result envelope, 202 pending approval)",
    responses={
        200: {"model": ResultEnvelope, "description": "it ran: the result envelope"},
        202: {"model": PendingApproval, "description": "held for a person's approval; nothing ran"},
        **errors(*AUTH, *BODY, *INVOKE_ERRORS),
    },
)
async def invoke(
    slug: str,
    operation: str,
    request: Request,
    body: InvokeBody | None = None,
    who: tokens.Principal = Depends(principal),
) -> Response:
    # the runtime straight from the app, not Depends(get_runtime): a dependency is a
    # recursive solve per request, the hot route's largest cost (docs/perf-profile.md)
    runtime: Runtime = request.app.state.runtime
    body = body or InvokeBody.model_validate({})
    refuse_non_finite(body.params)
    return await run_invoke(runtime, slug, operation, body, who)


async def run_invoke(
    runtime: Runtime, slug: str, operation: str, body: InvokeBody, who: tokens.Principal
) -> Response:
    """Run the call and answer it: the result envelope (200), the pending approval (202)
    or the call's error, as JSON. Shared by the route and its fast path (fast_invoke.py)."""
    outcome = await runtime.execution.invoke(
        Invocation(
            slug=slug,
            operation=operation,
            params=body.params,
            credential_id=body.credentialId,
            use_mock=body.useMock,
            timeout_ms=body.timeoutMs,
            retries=body.retries,
            caller="api",
            token_id=who.token_id,
            role=who.role,
        )
    )
    if outcome.text is not None:  # a big result, encoded off the event loop
        return Response(
            outcome.text, status_code=outcome.status, headers=outcome.headers, media_type="application/json"
        )
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)
