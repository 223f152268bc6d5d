"""The approval rows: insert, read, the exactly-once claim (``UPDATE … WHERE status =
'pending'``), the execution lease, stale marks and the final result (DESIGN §6, §12).

Every change enqueues its webhook events in its own transaction (:class:`ApprovalEvents`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select, update

from bollard.platform.store.tables import approvals

if TYPE_CHECKING:
    from bollard.platform.approvals.events import ApprovalEvents
    from bollard.platform.runtime import Runtime
    from bollard.platform.tokens import Principal

log = logging.getLogger("bollard.approvals")


class ApprovalStore:
    """Reads and writes the ``approvals`` table."""

    def __init__(self, runtime: Runtime, events: ApprovalEvents) -> None:
        self.runtime = runtime
        self.events = events

    @property
    def lease(self) -> timedelta:
        """How long an ``executing`` approval stays claimed without a renewal."""
        return timedelta(seconds=self.runtime.settings.approval_lease_s)

    async def insert(self, row: dict[str, Any]) -> None:
        """Store a new approval row (its webhook event in the same transaction, DESIGN §6)."""
        async with self.runtime.db.begin() as conn:
            await conn.execute(approvals.insert().values(**row))
            await self.runtime.webhooks.approval_changed(conn, row)  # same transaction (DESIGN §6)

    async def load(self, approval_id: str) -> Any:
        """The row of ``approval_id``, or ``None``."""
        async with self.runtime.db.connect() as conn:
            return (await conn.execute(select(approvals).where(approvals.c.id == approval_id))).first()

    async def rows(self, conds: list[Any], limit: int, offset: int) -> tuple[list[Any], int]:
        """Rows matching ``conds``, newest first (``limit`` clamped to 1–500), and how many match."""
        async with self.runtime.db.connect() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(approvals).where(*conds))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(approvals)
                    .where(*conds)
                    .order_by(approvals.c.requested_at.desc(), approvals.c.id)
                    .limit(max(1, min(limit, 500)))
                    .offset(max(0, offset))
                )
            ).all()
        return list(rows), int(total)

    async def update(self, where: Any, values: dict[str, Any]) -> list[Any]:
        """``UPDATE approvals SET values WHERE where``; the changed rows, their webhook
        events enqueued in the same transaction."""
        async with self.runtime.db.begin() as conn:
            return await self.update_on(conn, where, values)

    async def update_on(self, conn: Any, where: Any, values: dict[str, Any]) -> list[Any]:
        """:meth:`update` in the caller's transaction ``conn``."""
        result = await conn.execute(update(approvals).where(where).values(**values).returning(*approvals.c))
        rows = list(result.all())
        await self.events.notify(conn, rows)
        return rows

    async def claim(self, approval_id: str, principal: Principal, to: str, reason: str | None = None) -> bool:
        """Move a pending, unexpired approval to ``to`` (``executing`` takes the lease);
        ``False`` when another decision got there first (it runs at most once)."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": to, "decided_by": principal.token_id, "decided_at": now}
        if reason:
            values["reason"] = reason[:2000]
        if to == "executing":
            values["started_at"] = now
            values["lease_until"] = now + self.lease
        where = and_(
            approvals.c.id == approval_id,
            approvals.c.status == "pending",
            approvals.c.expires_at >= now,
        )
        return len(await self.update(where, values)) == 1

    async def mark_stale(self, approval_id: str, status: str) -> bool:
        """Mark the approval, if still in ``status``, ``expired`` with ``approval_stale``;
        ``False`` when another decision got there first (the claim that follows says so)."""
        values: dict[str, Any] = {
            "status": "expired",
            "error_code": "approval_stale",
            "error_message": "the integration changed after this request; request the operation again",
        }
        if status == "executing":
            values["finished_at"] = datetime.now(UTC)
        rows = await self.update(and_(approvals.c.id == approval_id, approvals.c.status == status), values)
        if len(rows) == 1:
            self.events.changed(approval_id)  # wake long polls (?wait=)
            return True
        return False

    async def finish(self, approval_id: str, values: dict[str, Any]) -> None:
        """Store the result of an ``executing`` approval (``succeeded`` or ``failed``)."""
        await self.update(and_(approvals.c.id == approval_id, approvals.c.status == "executing"), values)

    async def renew_lease(self, approval_id: str) -> None:
        """Renew the lease of an approval this replica executes, every third of it,
        until cancelled (the call finished)."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.runtime.db.begin() as conn:
                    await conn.execute(
                        update(approvals)
                        .where(approvals.c.id == approval_id, approvals.c.status == "executing")
                        .values(lease_until=datetime.now(UTC) + self.lease)
                    )
            except Exception as e:  # the next renewal may get through; the call goes on
                log.warning("renewing the lease of approval %s failed: %s", approval_id, type(e).__name__)
