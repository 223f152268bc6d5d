"""The execution log (DESIGN §8): ``GET /api/executions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bollard.platform import tokens
from bollard.platform.api.deps import admin, get_runtime
from bollard.platform.execution_log import ExecutionFilter
from bollard.platform.runtime import Runtime
from fastapi import APIRouter, Depends, Query

router = APIRouter(prefix="/api/executions", tags=["executions"])


@router.get("", summary="Recorded calls, newest first (admin)")
async def list_executions(
    integration: str | None = None,
    operation: str | None = None,
    status: str | None = Query(None, description="succeeded | failed | pending_approval"),
    credentialId: str | None = None,
    approvalId: str | None = None,
    since: datetime | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    items, total = await runtime.execution_log.query(
        ExecutionFilter(
            integration=integration,
            operation=operation,
            status=status,
            credential_id=credentialId,
            approval_id=approvalId,
            since=since,
            limit=limit,
            offset=offset,
        )
    )
    return {"executions": items, "total": total, "limit": limit, "offset": offset}
