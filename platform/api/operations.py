"""Invoking operations (DESIGN §8): ``POST /api/integrations/{slug}/operations/{operation}``."""

from __future__ import annotations

from typing import Any

from bollard.platform import tokens
from bollard.platform.api.deps import get_runtime, principal
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.execution import Invocation
from bollard.platform.runtime import Runtime
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(prefix="/api/integrations", tags=["operations"])


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
        description="read operations without approval only (refused otherwise): retry network errors, 429 and 5xx",
    )


@router.post(
    "/{slug}/operations/{operation}",
    summary="Run an operation (200 result envelope, 202 pending approval)",
    responses={202: {"description": "held for approval"}},
)
async def invoke(
    slug: str,
    operation: str,
    body: InvokeBody | None = None,
    runtime: Runtime = Depends(get_runtime),
    who: tokens.Principal = Depends(principal),
) -> JSONResponse:
    body = body or InvokeBody.model_validate({})
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
    return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)
