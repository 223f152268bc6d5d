"""The execution log (DESIGN §8): ``GET /api/executions`` and ``GET /api/executions/{id}``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from bollard.platform import tokens
from bollard.platform.api.deps import MAX_OFFSET, admin, get_runtime, known_query, principal
from bollard.platform.api.openapi import ADMIN, AUTH, errors
from bollard.platform.errors import ApiError
from bollard.platform.execution_log import ExecutionFilter
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/executions", tags=["executions"], dependencies=[Depends(known_query)])


@router.get("", summary="Recorded calls, newest first (admin)", responses=errors(*ADMIN))
async def list_executions(
    integration: str | None = None,
    operation: str | None = None,
    status: str | None = Query(None, description="succeeded | failed | pending_approval"),
    credentialId: str | None = None,
    approvalId: str | None = None,
    caller: str | None = Query(None, description="the front: api | cli | mcp | tools | ui | approval"),
    requestId: str | None = Query(None, description="the X-Request-Id of the request that made the call"),
    since: str | None = Query(
        None,
        description="ISO 8601 date and time (2026-12-01T09:30:00Z); without an offset it is read as UTC",
        json_schema_extra={"format": "date-time"},
    ),
    until: str | None = Query(
        None,
        description="started before this (ISO 8601, like since)",
        json_schema_extra={"format": "date-time"},
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
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
            caller=caller,
            request_id=requestId,
            since=parse_since(since),
            until=parse_since(until, "until"),
            limit=limit,
            offset=offset,
        )
    )
    return {"executions": items, "total": total, "limit": limit, "offset": offset}


# YYYY-MM-DDTHH:MM[:SS[.frac]][Z|±HH:MM] (a space for the T, as RFC 3339 allows)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?")


def parse_since(value: str | None, name: str = "since") -> datetime | None:
    """``since`` (or ``until``: ``name``) as an aware datetime (naive means UTC);
    ``400 invalid_request`` naming it for anything but an ISO 8601 date and time (a bare
    number is not read as epoch seconds)."""
    if value is None:
        return None
    try:
        if not _DATE_TIME.fullmatch(value):
            raise ValueError
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ApiError(
            "invalid_request",
            f"{name} must be an ISO 8601 date and time such as 2026-12-01T09:30:00Z, got {value[:40]!r}",
            details=[{"path": name, "message": "not an ISO 8601 date and time"}],
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@router.get(
    "/{execution_id}",
    summary="One recorded call with its connector's log lines (admin, or the agent that made it)",
    responses=errors(*AUTH, "unknown_execution"),
)
async def get_execution(
    execution_id: str, runtime: Runtime = Depends(get_runtime), who: tokens.Principal = Depends(principal)
) -> dict[str, Any]:
    """The record of ``GET /api/executions`` plus ``logs``: the connector's ``print`` and
    ``ctx.log`` lines, redacted, at most 200 of 2000 characters. Agents see only their own
    calls; any other id answers 404 ``unknown_execution``."""
    found = await runtime.execution_log.get(execution_id)
    if found is None or (not who.is_admin and found["tokenId"] != who.token_id):
        raise ApiError("unknown_execution", f"no execution '{execution_id[:80]}'", status=404)
    return found
