"""Approvals (DESIGN §6, §8): list, read, approve, reject."""

from __future__ import annotations

from typing import Any

from bollard.platform import auth
from bollard.platform.api.deps import admin, get_runtime, principal
from bollard.platform.api.errors import ApiError
from bollard.platform.approvals import STATUSES, ApprovalError
from bollard.platform.runtime import Runtime
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

router = APIRouter(prefix="/api/approvals", tags=["approvals"])


def _api_error(e: ApprovalError) -> ApiError:
    return ApiError(e.status, e.code, e.message)


@router.get("", summary="Approvals, newest first (agents see their own)")
async def list_approvals(
    status: str | None = Query(None, description="|".join(STATUSES)),
    integration: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    runtime: Runtime = Depends(get_runtime),
    who: auth.Principal = Depends(principal),
) -> dict[str, Any]:
    if status is not None and status not in STATUSES:
        raise ApiError(400, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
    items, total = await runtime.approvals.list(
        status=status, integration=integration, principal=who, limit=limit, offset=offset
    )
    return {"approvals": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{approval_id}", summary="One approval, with its result when done")
async def get_approval(
    approval_id: str, runtime: Runtime = Depends(get_runtime), who: auth.Principal = Depends(principal)
) -> dict[str, Any]:
    try:
        return await runtime.approvals.get(approval_id, who)
    except ApprovalError as e:
        raise _api_error(e) from None


@router.post("/{approval_id}/approve", summary="Approve and run it (admin; runs at most once)")
async def approve(
    approval_id: str, runtime: Runtime = Depends(get_runtime), who: auth.Principal = Depends(admin)
) -> dict[str, Any]:
    try:
        return await runtime.approvals.approve(approval_id, who)
    except ApprovalError as e:
        raise _api_error(e) from None


class RejectBody(BaseModel):
    reason: str | None = Field(None, max_length=2000)


@router.post("/{approval_id}/reject", summary="Reject it (admin)")
async def reject(
    approval_id: str,
    body: RejectBody | None = None,
    runtime: Runtime = Depends(get_runtime),
    who: auth.Principal = Depends(admin),
) -> dict[str, Any]:
    try:
        return await runtime.approvals.reject(approval_id, who, body.reason if body else None)
    except ApprovalError as e:
        raise _api_error(e) from None
