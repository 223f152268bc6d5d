"""Approvals (DESIGN §6, §8): list, read, approve, reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from bollard.platform import tokens
from bollard.platform.api.deps import MAX_OFFSET, admin, get_runtime, known_query, principal
from bollard.platform.api.openapi import ADMIN, AUTH, BODY, errors
from bollard.platform.approvals.events import MAX_WAIT_S
from bollard.platform.approvals.rows import STATUSES
from bollard.platform.errors import ApiError
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/approvals", tags=["approvals"], dependencies=[Depends(known_query)])


@router.get("", summary="Approvals, newest first (agents see their own)", responses=errors(*AUTH))
async def list_approvals(
    status: str | None = Query(
        None, description="|".join(STATUSES), json_schema_extra={"enum": list(STATUSES)}
    ),
    integration: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    runtime: Runtime = Depends(get_runtime),
    who: tokens.Principal = Depends(principal),
) -> dict[str, Any]:
    if status is not None and status not in STATUSES:
        raise ApiError("invalid_request", f"status must be one of {', '.join(STATUSES)}", status=400)
    items, total = await runtime.approvals.list(
        status=status, integration=integration, principal=who, limit=limit, offset=offset
    )
    return {"approvals": items, "total": total, "limit": limit, "offset": offset}


@router.get(
    "/{approval_id}",
    summary="One approval, with its result when done; ?wait=SECONDS long-polls until it is decided",
    responses=errors(*AUTH, "not_found"),
)
async def get_approval(
    approval_id: str,
    wait: float | None = Query(
        None,
        ge=0,
        le=MAX_WAIT_S,
        description="wait up to this many seconds (at most 60) for a final status: succeeded, failed, "
        "rejected or expired; answers the approval as it is when the wait ends",
    ),
    runtime: Runtime = Depends(get_runtime),
    who: tokens.Principal = Depends(principal),
) -> dict[str, Any]:
    if wait:
        return await runtime.approvals.wait(approval_id, who, wait)
    return await runtime.approvals.get(approval_id, who)


@router.post(
    "/{approval_id}/approve",
    summary="Approve and run it (admin; runs at most once)",
    responses=errors(*ADMIN, "not_found", "approval_decided", "approval_expired", "approval_stale"),
)
async def approve(
    approval_id: str, runtime: Runtime = Depends(get_runtime), who: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    return await runtime.approvals.approve(approval_id, who)


class RejectBody(BaseModel):
    """Optional body of ``POST …/reject``: ``{"reason": "…"}``, stored and shown with the approval."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000, description="why; shown with the approval")


@router.post(
    "/{approval_id}/reject",
    summary="Reject it (admin), with an optional reason shown with the approval",
    responses=errors(*ADMIN, *BODY, "not_found", "approval_decided", "approval_expired"),
)
async def reject(
    approval_id: str,
    body: RejectBody | None = None,
    runtime: Runtime = Depends(get_runtime),
    who: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    return await runtime.approvals.reject(approval_id, who, body.reason if body else None)
