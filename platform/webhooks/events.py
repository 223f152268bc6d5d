"""Webhook event types and bodies (DESIGN §6: approval notifications).

One event per approval status change. The body is JSON:
``{"id": event id, "type": one of EVENT_TYPES, "createdAt": ISO 8601 UTC,
"approval": {…the approval as GET /api/approvals/{id} shows it, without "result"…}}``
(the result can be megabytes; the approval's URL gives it).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

EVENT_TYPES = (
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "approval.expired",
    "approval.succeeded",
    "approval.failed",
)

# The approval status each event follows (``executing`` is the approved claim, DESIGN §6).
EVENT_BY_STATUS = {
    "pending": "approval.requested",
    "executing": "approval.approved",
    "rejected": "approval.rejected",
    "expired": "approval.expired",
    "succeeded": "approval.succeeded",
    "failed": "approval.failed",
}


def event_body(event_type: str, approval: dict[str, Any], created_at: str) -> tuple[str, str]:
    """``(event id, body text)`` of one event: compact JSON, UTF-8, the exact bytes signed."""
    event_id = str(uuid.uuid4())
    shown = {k: v for k, v in approval.items() if k != "result"}
    body = {"id": event_id, "type": event_type, "createdAt": created_at, "approval": shown}
    return event_id, json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
