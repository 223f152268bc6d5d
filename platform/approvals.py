"""Approvals: writes wait for a person, then run exactly once (DESIGN §6).

State machine: ``pending → approved → executing → succeeded | failed``, plus
``rejected`` and ``expired``. Approving is one server-side call that claims the row
atomically (``UPDATE … WHERE status = 'pending'``), so two people — or two replicas
sharing one PostgreSQL — approving at once run it once. An approval binds the
integration's content hash and the exact parameters: if the integration changed, the
approval is marked ``expired`` (``approval_stale``) and a new request is needed. The version
object that was checked is the one that runs: it is handed to the execution service, which
does not resolve the registry again; a change that lands while the claim is written makes
the approval stale instead of running the new version. An approval left
``executing`` by a killed process is marked ``failed`` once it is older than the
longest possible execution, or as soon as its lease lapses (the replica running it
renews ``lease_until`` every third of ``BOLLARD_APPROVAL_LEASE_S`` while it runs, so a
lapsed lease means that replica was killed), never re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update

from bollard.platform.errors import ApprovalError
from bollard.platform.params import renderable
from bollard.platform.store.tables import approvals
from bollard.platform.timestamps import iso_utc

if TYPE_CHECKING:
    from bollard.platform.execution import ExecutionService
    from bollard.platform.invocation import Invocation
    from bollard.platform.manifest import Operation
    from bollard.platform.packages import IntegrationVersion
    from bollard.platform.runtime import Runtime
    from bollard.platform.tokens import Principal

log = logging.getLogger("bollard.approvals")
STATUSES = ("pending", "approved", "executing", "succeeded", "failed", "rejected", "expired")
FINAL_STATUSES = ("succeeded", "failed", "rejected", "expired")  # nothing changes after these
MAX_WAIT_S = 60.0  # the longest long poll of GET /api/approvals/{id}?wait=
# How often a long poll re-reads the row anyway: the fallback should another replica's
# approval event be missed (decisions here and there wake it at once).
WAIT_POLL_S = 1.0


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


class Approvals:
    """Stores and decides approvals; runs the approved call through the execution service."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._sweeper: asyncio.Task[None] | None = None
        # One event per approval someone long-polls; set (and dropped) on each change here.
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}

    def _changed(self, approval_id: str) -> None:
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

    async def wait(self, approval_id: str, principal: Principal | None, wait_s: float) -> dict[str, Any]:
        """The approval once it reached a final status (``succeeded``, ``failed``,
        ``rejected``, ``expired``: decided and, when approved, run), or as it is when
        ``wait_s`` seconds (at most :data:`MAX_WAIT_S`) passed (DESIGN §6 long poll).

        A decision in this process, or in another replica (its approval event, DESIGN
        §12), wakes the wait at once; a missed event is made up for by the re-read every
        :data:`WAIT_POLL_S` s. Raises like :meth:`get`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(wait_s, MAX_WAIT_S))
        self._waiting[approval_id] = self._waiting.get(approval_id, 0) + 1
        try:
            while True:
                event = self._events.setdefault(
                    approval_id, asyncio.Event()
                )  # before reading: no lost wake-up
                approval = await self.get(approval_id, principal)
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

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.runtime.settings.approval_ttl_s)

    @property
    def lease(self) -> timedelta:
        """How long an ``executing`` approval stays claimed without a renewal."""
        return timedelta(seconds=self.runtime.settings.approval_lease_s)

    async def _renew_lease(self, approval_id: str) -> None:
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

    @property
    def stale_after(self) -> timedelta:
        """An ``executing`` approval older than this cannot still be running anywhere."""
        s = self.runtime.settings
        longest = max(s.max_wall_time_ms, s.max_query_timeout_ms)
        return timedelta(milliseconds=longest, seconds=s.approval_stale_margin_s)

    async def request(
        self,
        service: ExecutionService,
        inv: Invocation,
        version: IntegrationVersion,
        op: Operation,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """Store a ``pending`` approval for a validated call; return the 202 body (:func:`pending_body`).

        The credential must exist already, so a request that could never run fails now.
        """
        await service.credential_values(version, inv.credential_id)
        now = datetime.now(UTC)
        summary: dict[str, Any] = {
            "integration": version.manifest.title,
            "operation": op.title or op.name,
            "operationType": op.operation_type,
            "description": op.description,
            "params": params,
            "credentialId": inv.credential_id,
        }
        if op.query is not None:
            summary["query"] = op.query
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "integration": version.slug,
            "operation": op.name,
            "credential_id": inv.credential_id,
            "params": params,
            "content_hash": version.content_hash,
            "version": version.version,
            "summary": summary,
            "status": "pending",
            "requested_by": inv.token_id,
            "requested_at": now,
            "expires_at": now + self.ttl,
        }
        async with self.runtime.db.begin() as conn:
            await conn.execute(approvals.insert().values(**row))
            await self.runtime.webhooks.approval_changed(conn, row)  # same transaction (DESIGN §6)
        return pending_body(approval_json(row))

    async def _load(self, approval_id: str) -> Any:
        async with self.runtime.db.connect() as conn:
            return (await conn.execute(select(approvals).where(approvals.c.id == approval_id))).first()

    async def get(self, approval_id: str, principal: Principal | None = None) -> dict[str, Any]:
        """One approval (expiring it first if its TTL passed); agents see only their own."""
        await self.expire_due()
        row = await self._load(approval_id)
        if row is None or (
            principal is not None and not principal.is_admin and row.requested_by != principal.token_id
        ):
            raise ApprovalError("not_found", f"no approval '{approval_id[:80]}'", status=404)
        return approval_json(row)

    async def list(
        self,
        *,
        status: str | None = None,
        integration: str | None = None,
        principal: Principal | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        await self.expire_due()
        conds = []
        if status is not None:
            conds.append(approvals.c.status == status)
        if integration is not None:
            conds.append(approvals.c.integration == integration)
        if principal is not None and not principal.is_admin:
            conds.append(approvals.c.requested_by == principal.token_id)
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
        return [approval_json(r) for r in rows], int(total)

    async def expire_due(self) -> None:
        """Mark pending approvals past their TTL ``expired`` and interrupted executions ``failed``."""
        now = datetime.now(UTC)
        async with self.runtime.db.begin() as conn:
            expired = await conn.execute(
                update(approvals)
                .where(approvals.c.status == "pending", approvals.c.expires_at < now)
                .values(
                    status="expired",
                    error_code="approval_expired",
                    error_message="the approval was not decided in time",
                )
                .returning(*approvals.c)
            )
            await self._notify(conn, expired.all())
            interrupted = await conn.execute(
                update(approvals)
                .where(
                    approvals.c.status.in_(("approved", "executing")),
                    or_(
                        approvals.c.started_at < now - self.stale_after,
                        approvals.c.lease_until < now,  # the replica running it died
                    ),
                )
                .values(
                    status="failed",
                    finished_at=now,
                    error_code="interrupted",
                    error_message="the server stopped while this approval was executing; it was not re-run. "
                    "Check the target system, then request the operation again if needed",
                )
                .returning(*approvals.c)
            )
            await self._notify(conn, interrupted.all())

    async def _notify(self, conn: Any, rows: Any) -> None:
        """Enqueue the webhook events of changed approval ``rows`` on ``conn``, in the
        transaction that changed them (DESIGN §6 notifications, platform/webhooks/)."""
        for row in rows:
            await self.runtime.webhooks.approval_changed(conn, row)

    async def expire_integration(self, slug: str) -> int:
        """Expire every pending approval of ``slug`` with ``approval_stale`` (its
        integration was uninstalled, DESIGN §10); returns how many."""
        async with self.runtime.db.begin() as conn:
            result = await conn.execute(
                update(approvals)
                .where(approvals.c.integration == slug, approvals.c.status == "pending")
                .values(
                    status="expired",
                    error_code="approval_stale",
                    error_message=f"integration '{slug}' was uninstalled after this request",
                )
                .returning(*approvals.c)
            )
            rows = result.all()
            await self._notify(conn, rows)
        return len(rows)

    async def _claim(
        self, approval_id: str, principal: Principal, to: str, reason: str | None = None
    ) -> bool:
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": to, "decided_by": principal.token_id, "decided_at": now}
        if reason:
            values["reason"] = reason[:2000]
        if to == "executing":
            values["started_at"] = now
            values["lease_until"] = now + self.lease
        async with self.runtime.db.begin() as conn:
            result = await conn.execute(
                update(approvals)
                .where(
                    and_(
                        approvals.c.id == approval_id,
                        approvals.c.status == "pending",
                        approvals.c.expires_at >= now,
                    )
                )
                .values(**values)
                .returning(*approvals.c)
            )
            rows = result.all()
            await self._notify(conn, rows)
        return len(rows) == 1

    async def _refuse_claim(self, approval_id: str) -> None:
        row = await self._load(approval_id)
        if row is None:
            raise ApprovalError("not_found", f"no approval '{approval_id[:80]}'", status=404)
        if row.status == "pending":  # its TTL passed between the check and the claim
            await self.expire_due()
            raise ApprovalError("approval_expired", "this approval expired; request the operation again")
        if row.status == "expired" and row.error_code in ("approval_stale", "approval_expired"):
            message = str(row.error_message or "this approval expired")
            if "request the operation again" not in message:
                message += "; request the operation again"
            raise ApprovalError(row.error_code, message)
        raise ApprovalError(
            "approval_decided", f"this approval is already {row.status}; it runs at most once"
        )

    async def reject(
        self, approval_id: str, principal: Principal, reason: str | None = None
    ) -> dict[str, Any]:
        """Reject a pending approval; ``reason`` (≤2000 characters) is stored and shown with it.

        Raises :class:`ApprovalError` when it is unknown, already decided or expired.
        """
        await self.expire_due()
        if not await self._claim(approval_id, principal, "rejected", (reason or "").strip() or None):
            await self._refuse_claim(approval_id)
        self._changed(approval_id)
        return await self.get(approval_id)

    def _serving(self, row: Any) -> IntegrationVersion | None:
        """The registry's serving version of the approval's integration when its content
        hash is the one the approval bound, else ``None``."""
        entry = self.runtime.registry.get(row.integration)
        version = entry.version if entry is not None else None
        return version if version is not None and version.content_hash == row.content_hash else None

    async def _mark_stale(self, approval_id: str, status: str) -> bool:
        """Mark the approval, if still in ``status``, ``expired`` with ``approval_stale``;
        ``False`` when another decision got there first (the claim that follows says so)."""
        values: dict[str, Any] = {
            "status": "expired",
            "error_code": "approval_stale",
            "error_message": "the integration changed after this request; request the operation again",
        }
        if status == "executing":
            values["finished_at"] = datetime.now(UTC)
        async with self.runtime.db.begin() as conn:
            changed = await conn.execute(
                update(approvals)
                .where(approvals.c.id == approval_id, approvals.c.status == status)
                .values(**values)
                .returning(*approvals.c)
            )
            rows = changed.all()
            await self._notify(conn, rows)
        if len(rows) == 1:
            self._changed(approval_id)  # wake long polls (?wait=)
            return True
        return False

    @staticmethod
    def _stale_error(row: Any) -> ApprovalError:
        return ApprovalError(
            "approval_stale",
            f"integration '{row.integration}' changed since this approval was requested "
            f"(was version {row.version}); request the operation again so the approver sees what will run",
        )

    async def approve(self, approval_id: str, principal: Principal) -> dict[str, Any]:
        """Claim, check the integration did not change, run once, store the result.

        Raises :class:`ApprovalError` when the approval is unknown, already decided,
        expired, or its integration changed since the request.
        """
        from bollard.platform.errors import ExecutionError
        from bollard.platform.invocation import Invocation

        await self.expire_due()
        row = await self._load(approval_id)
        if row is None:
            raise ApprovalError("not_found", f"no approval '{approval_id[:80]}'", status=404)
        current = self._serving(row)
        if row.status == "pending" and current is None and await self._mark_stale(approval_id, "pending"):
            raise self._stale_error(row)
        if not await self._claim(approval_id, principal, "executing"):
            await self._refuse_claim(approval_id)
        # The registry may have changed while the claim was written: what runs is the
        # version that was checked, and only while it is still the one served (DESIGN §6).
        if current is None or self._serving(row) is None:
            await self._mark_stale(approval_id, "executing")
            raise self._stale_error(row)

        service = self.runtime.execution
        inv = Invocation(
            slug=row.integration,
            operation=row.operation,
            params=dict(row.params),
            credential_id=row.credential_id,
            caller="approval",
            approval_id=approval_id,
            token_id=principal.token_id,
            role=principal.role,
        )
        outcome = None
        renewing = asyncio.get_running_loop().create_task(self._renew_lease(approval_id))
        try:
            outcome = await service.run_approved(inv, current)
        except Exception as e:  # never leave it executing
            log.exception("approval %s failed unexpectedly", approval_id)
            outcome = None
            err = ExecutionError("internal_error", f"internal error ({type(e).__name__})")
        finally:
            renewing.cancel()
        now = datetime.now(UTC)
        if outcome is not None and outcome.ok:
            values: dict[str, Any] = {"status": "succeeded", "result": outcome.body, "finished_at": now}
        else:
            error = (
                outcome.body["error"] if outcome is not None else {"code": err.code, "message": err.message}
            )
            values = {
                "status": "failed",
                "result": outcome.body if outcome is not None else None,
                "error_code": error["code"],
                "error_message": error["message"],
                "finished_at": now,
            }
        async with self.runtime.db.begin() as conn:
            done = await conn.execute(
                update(approvals)
                .where(approvals.c.id == approval_id, approvals.c.status == "executing")
                .values(**values)
                .returning(*approvals.c)
            )
            await self._notify(conn, done.all())
        self._changed(approval_id)
        return await self.get(approval_id)

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
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
