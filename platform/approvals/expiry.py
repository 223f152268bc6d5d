"""Approvals that end without a decision: pending ones past their TTL (``approval_expired``),
executions a killed process left behind (``interrupted``: too old, or the lease lapsed) and
the pending ones of an uninstalled integration (``approval_stale``); the periodic sweep
(DESIGN §6, §10, §12)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_

from bollard.platform.store.tables import approvals

if TYPE_CHECKING:
    from bollard.platform.approvals.store import ApprovalStore
    from bollard.platform.runtime import Runtime


class Expiry:
    """Expires and fails-stale approvals, on read and by a periodic sweep."""

    def __init__(self, runtime: Runtime, store: ApprovalStore) -> None:
        self.runtime = runtime
        self.store = store
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def stale_after(self) -> timedelta:
        """An ``executing`` approval older than this cannot still be running anywhere."""
        s = self.runtime.settings
        longest = max(s.max_wall_time_ms, s.max_query_timeout_ms)
        return timedelta(milliseconds=longest, seconds=s.approval_stale_margin_s)

    async def expire_due(self) -> None:
        """Mark pending approvals past their TTL ``expired`` and interrupted executions ``failed``."""
        now = datetime.now(UTC)
        expired = and_(approvals.c.status == "pending", approvals.c.expires_at < now)
        interrupted = and_(
            approvals.c.status.in_(("approved", "executing")),
            or_(
                approvals.c.started_at < now - self.stale_after,
                approvals.c.lease_until < now,  # the replica running it died
            ),
        )
        async with self.runtime.db.begin() as conn:
            await self.store.update_on(
                conn,
                expired,
                {
                    "status": "expired",
                    "error_code": "approval_expired",
                    "error_message": "the approval was not decided in time",
                },
            )
            await self.store.update_on(
                conn,
                interrupted,
                {
                    "status": "failed",
                    "finished_at": now,
                    "error_code": "interrupted",
                    "error_message": "the server stopped while this approval was executing; it was not "
                    "re-run. Check the target system, then request the operation again if needed",
                },
            )

    async def expire_integration(self, slug: str) -> int:
        """Expire every pending approval of ``slug`` with ``approval_stale`` (its
        integration was uninstalled, DESIGN §10); returns how many."""
        rows = await self.store.update(
            and_(approvals.c.integration == slug, approvals.c.status == "pending"),
            {
                "status": "expired",
                "error_code": "approval_stale",
                "error_message": f"integration '{slug}' was uninstalled after this request",
            },
        )
        return len(rows)

    def start_sweeper(self) -> None:
        """Expire and fail-stale approvals periodically (and once now, at start)."""
        interval_s = self.runtime.settings.approval_sweep_interval_s

        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await self.expire_due()
                await asyncio.sleep(interval_s)

        self._sweeper = asyncio.get_running_loop().create_task(loop())

    async def close(self) -> None:
        """Stop the sweep (waits for it to end)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
