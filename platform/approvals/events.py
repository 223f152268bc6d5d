"""Telling others an approval changed: its webhook events, in the transaction that changed
it (DESIGN §6 notifications, ``platform/webhooks/``), the event other replicas hear
(``platform/replicas.py``), and the long polls of ``GET /api/approvals/{id}?wait=``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bollard.platform.approvals.rows import FINAL_STATUSES

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime

MAX_WAIT_S = 60.0  # the longest long poll of GET /api/approvals/{id}?wait=
# How often a long poll re-reads the row anyway: the fallback should another replica's
# approval event be missed (decisions here and there wake it at once).
WAIT_POLL_S = 1.0


class ApprovalEvents:
    """Webhook events, the replicas' event and long-poll wake-ups of approvals."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # One event per approval someone long-polls; set (and dropped) on each change here.
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}

    async def notify(self, conn: Any, rows: Any) -> None:
        """Enqueue the webhook events of changed approval ``rows`` on ``conn``, in the
        transaction that changed them (DESIGN §6 notifications, platform/webhooks/)."""
        for row in rows:
            await self.runtime.webhooks.approval_changed(conn, row)

    def changed(self, approval_id: str) -> None:
        """Publish the approval event (other replicas) and wake long polls here."""
        self.runtime.events.publish("approval", {"id": approval_id})
        self.wake(approval_id)

    def wake(self, approval_id: str | None = None) -> None:
        """Wake long polls on ``approval_id`` (every one when ``None``) to re-read it: on
        a change here, or another replica's approval event (``platform/replicas.py``)."""
        ids = list(self._events) if approval_id is None else [approval_id]
        for aid in ids:
            event = self._events.pop(aid, None)
            if event is not None:
                event.set()

    async def wait(
        self, approval_id: str, read: Callable[[], Awaitable[dict[str, Any]]], wait_s: float
    ) -> dict[str, Any]:
        """``read()`` again until the approval it answers reached a final status, or
        ``wait_s`` seconds (at most :data:`MAX_WAIT_S`) passed; the last answer.

        A :meth:`wake` re-reads at once; a missed one is made up for by the re-read every
        :data:`WAIT_POLL_S` s. Raises what ``read`` raises.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(wait_s, MAX_WAIT_S))
        self._waiting[approval_id] = self._waiting.get(approval_id, 0) + 1
        try:
            while True:
                event = self._events.setdefault(
                    approval_id, asyncio.Event()
                )  # before reading: no lost wake-up
                approval = await read()
                remaining = deadline - loop.time()
                if approval["status"] in FINAL_STATUSES or remaining <= 0:
                    return approval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, WAIT_POLL_S))
        finally:
            self._waiting[approval_id] -= 1
            if not self._waiting[approval_id]:
                del self._waiting[approval_id]
                self._events.pop(approval_id, None)
