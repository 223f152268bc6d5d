"""Approval notification deliveries (DESIGN §6): list, show, redeliver (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from bollard.platform import tokens
from bollard.platform.api.deps import MAX_OFFSET, admin, get_runtime, known_query
from bollard.platform.api.openapi import ADMIN, errors
from bollard.platform.runtime import Runtime
from bollard.platform.webhooks.events import EVENT_TYPES

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], dependencies=[Depends(known_query)])


@router.get(
    "/endpoints",
    summary="The configured webhook endpoints, without secrets (admin)",
    responses=errors(*ADMIN),
)
async def list_endpoints(
    runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    """``BOLLARD_WEBHOOKS`` as ``{"endpoints": [{"name", "url", "events"}]}`` (``events``:
    the types each receives) and the webhook egress allowlist, ``allowedHosts``."""
    s = runtime.settings
    return {
        "endpoints": [
            {"name": e.name, "url": e.url.split("?", 1)[0], "events": list(e.events or EVENT_TYPES)}
            for e in s.webhooks
        ],
        "allowedHosts": list(s.webhook_allowed_hosts),
    }


@router.get("/deliveries", summary="Webhook deliveries, newest first (admin)", responses=errors(*ADMIN))
async def list_deliveries(
    status: str | None = Query(None, description="pending | delivered | dead"),
    eventType: str | None = Query(None, description=" | ".join(EVENT_TYPES)),
    approvalId: str | None = None,
    endpoint: str | None = Query(None, description="an endpoint name from BOLLARD_WEBHOOKS"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    """``{"deliveries": [...], "total", "limit", "offset"}``; each delivery: ``id``,
    ``endpoint``, ``url`` (without its query), ``eventId``, ``eventType``, ``approvalId``,
    ``status``, ``attempts``, ``lastStatusCode``, ``lastError``, ``createdAt``,
    ``lastAttemptAt``, ``nextAttemptAt``, ``deliveredAt``, ``redeliveryOf``."""
    items, total = await runtime.webhooks.list(
        status=status,
        event_type=eventType,
        approval_id=approvalId,
        endpoint=endpoint,
        limit=limit,
        offset=offset,
    )
    return {"deliveries": items, "total": total, "limit": limit, "offset": offset}


@router.get(
    "/deliveries/{delivery_id}",
    summary="One webhook delivery with the event it sends (admin)",
    responses=errors(*ADMIN, "not_found"),
)
async def get_delivery(
    delivery_id: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    return await runtime.webhooks.get(delivery_id)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery's event again, as a new delivery (admin)",
    responses=errors(*ADMIN, "not_found", "conflict"),
)
async def redeliver(
    delivery_id: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    """``202`` with the new delivery (``status: "pending"``, ``redeliveryOf`` the original):
    the same event (id and body), signed afresh, to the endpoint's current URL. ``409
    conflict`` when the endpoint is no longer configured."""
    return await runtime.webhooks.redeliver(delivery_id)
