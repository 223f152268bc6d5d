"""Approval statuses and the shapes the API shows: an approval, the ``202`` body of a held
call, and the errors that name an approval (DESIGN §6)."""

from __future__ import annotations

from typing import Any

from bollard.platform.errors import ApprovalError
from bollard.platform.params import renderable
from bollard.platform.timestamps import iso_utc

STATUSES = ("pending", "approved", "executing", "succeeded", "failed", "rejected", "expired")
FINAL_STATUSES = ("succeeded", "failed", "rejected", "expired")  # nothing changes after these


def approval_json(row: Any) -> dict[str, Any]:
    """An approval as the API shows it; ``row`` is a result row or a mapping of its columns.

    ``reason`` is what the person who rejected it wrote (``null`` otherwise, DESIGN §6);
    ``result`` and ``error`` appear once it ran or failed. Timestamps: ISO 8601 UTC. Stored
    JSON is shown through :func:`~bollard.platform.params.renderable`, so any row renders.
    """
    m = row._mapping if hasattr(row, "_mapping") else row
    out: dict[str, Any] = {
        "id": m["id"],
        "status": m["status"],
        "integration": m["integration"],
        "operation": m["operation"],
        "credentialId": m["credential_id"],
        "params": renderable(m["params"]),
        "version": m["version"],
        "contentHash": m["content_hash"],
        "summary": renderable(m["summary"]),
        "requestedBy": m.get("requested_by"),
        "requestedAt": iso_utc(m["requested_at"]),
        "expiresAt": iso_utc(m["expires_at"]),
        "decidedBy": m.get("decided_by"),
        "decidedAt": iso_utc(m.get("decided_at")),
        "startedAt": iso_utc(m.get("started_at")),
        "finishedAt": iso_utc(m.get("finished_at")),
        "reason": m.get("reason"),
    }
    if m.get("result") is not None:
        out["result"] = renderable(m["result"])
    if m.get("error_code") is not None:
        out["error"] = {"code": m["error_code"], "message": m["error_message"]}
    elif m["status"] == "rejected" and m["error_message"]:  # reject() stores the reason there
        out["reason"] = m["error_message"]
    return out


def pending_body(approval: dict[str, Any]) -> dict[str, Any]:
    """The ``202`` body of a held call (DESIGN §6): nothing ran, so no ``success``.

    ``{"status": "pending", "approvalId", "approval": {…}, "integration", "operation",
    "version", "message"}``; the message says how to approve it.
    """
    aid = approval["id"]
    return {
        "status": "pending",
        "approvalId": aid,
        "approval": approval,
        "integration": approval["integration"],
        "operation": approval["operation"],
        "version": approval["version"],
        "message": f"operation '{approval['operation']}' of '{approval['integration']}' was not run: it "
        f"waits for a person's approval: POST /api/approvals/{aid}/approve (admin), or "
        f"/reject; poll GET /api/approvals/{aid}",
    }


def not_found(approval_id: str) -> ApprovalError:
    """``not_found`` (404) for an unknown approval id (or one the caller may not see)."""
    return ApprovalError("not_found", f"no approval '{approval_id[:80]}'", status=404)


def stale_error(row: Any) -> ApprovalError:
    """``approval_stale``: the approval's integration changed since it was requested."""
    return ApprovalError(
        "approval_stale",
        f"integration '{row.integration}' changed since this approval was requested "
        f"(was version {row.version}); request the operation again so the approver sees what will run",
    )
