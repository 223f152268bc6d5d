"""The approvals service: hold a validated write as a ``pending`` approval, show
approvals to who may see them, reject, or approve — claim, check the integration did not
change, run once through the execution service, store the result (DESIGN §6; the package
docstring gives the state machine)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bollard.platform.approvals.events import ApprovalEvents
from bollard.platform.approvals.expiry import Expiry
from bollard.platform.approvals.rows import approval_json, not_found, pending_body, stale_error
from bollard.platform.approvals.store import ApprovalStore
from bollard.platform.errors import ApprovalError
from bollard.platform.store.tables import approvals

if TYPE_CHECKING:
    from bollard.platform.execution import ExecutionService
    from bollard.platform.invocation import Invocation, Outcome
    from bollard.platform.manifest import Operation
    from bollard.platform.packages import IntegrationVersion
    from bollard.platform.runtime import Runtime
    from bollard.platform.tokens import Principal

log = logging.getLogger("bollard.approvals")


class Approvals:
    """Stores and decides approvals; runs the approved call through the execution service.

    ``events`` tells webhooks, replicas and long polls of changes; ``store`` holds the
    rows; ``expiry`` expires them (and runs the sweep)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.events = ApprovalEvents(runtime)
        self.store = ApprovalStore(runtime, self.events)
        self.expiry = Expiry(runtime, self.store)

    @property
    def ttl(self) -> timedelta:
        """How long a ``pending`` approval waits for a decision."""
        return timedelta(seconds=self.runtime.settings.approval_ttl_s)

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
        await self.store.insert(row)
        return pending_body(approval_json(row))

    async def get(self, approval_id: str, principal: Principal | None = None) -> dict[str, Any]:
        """One approval (expiring it first if its TTL passed); agents see only their own.

        Raises ``not_found`` (404) otherwise."""
        await self.expiry.expire_due()
        row = await self.store.load(approval_id)
        if row is None or (
            principal is not None and not principal.is_admin and row.requested_by != principal.token_id
        ):
            raise not_found(approval_id)
        return approval_json(row)

    async def wait(self, approval_id: str, principal: Principal | None, wait_s: float) -> dict[str, Any]:
        """The approval once it reached a final status (``succeeded``, ``failed``,
        ``rejected``, ``expired``: decided and, when approved, run), or as it is when
        ``wait_s`` seconds (at most ``events.MAX_WAIT_S``) passed (DESIGN §6 long poll).

        A decision in this process, or in another replica (its approval event, DESIGN
        §12), wakes the wait at once; a missed event is made up for by the re-read every
        ``events.WAIT_POLL_S`` s. Raises like :meth:`get`.
        """
        return await self.events.wait(approval_id, lambda: self.get(approval_id, principal), wait_s)

    async def list(
        self,
        *,
        status: str | None = None,
        integration: str | None = None,
        principal: Principal | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of approvals, newest first (``limit`` 1–500), and how many match;
        agents see only their own."""
        await self.expiry.expire_due()
        conds = []
        if status is not None:
            conds.append(approvals.c.status == status)
        if integration is not None:
            conds.append(approvals.c.integration == integration)
        if principal is not None and not principal.is_admin:
            conds.append(approvals.c.requested_by == principal.token_id)
        rows, total = await self.store.rows(conds, limit, offset)
        return [approval_json(r) for r in rows], total

    async def _refuse_claim(self, approval_id: str) -> None:
        """Raise why the claim of ``approval_id`` failed."""
        row = await self.store.load(approval_id)
        if row is None:
            raise not_found(approval_id)
        if row.status == "pending":  # its TTL passed between the check and the claim
            await self.expiry.expire_due()
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
        await self.expiry.expire_due()
        if not await self.store.claim(approval_id, principal, "rejected", (reason or "").strip() or None):
            await self._refuse_claim(approval_id)
        self.events.changed(approval_id)
        return await self.get(approval_id)

    def _serving(self, row: Any) -> IntegrationVersion | None:
        """The registry's serving version of the approval's integration when its content
        hash is the one the approval bound, else ``None``."""
        entry = self.runtime.registry.get(row.integration)
        version = entry.version if entry is not None else None
        return version if version is not None and version.content_hash == row.content_hash else None

    async def approve(self, approval_id: str, principal: Principal) -> dict[str, Any]:
        """Claim, check the integration did not change, run once, store the result.

        Raises :class:`ApprovalError` when the approval is unknown, already decided,
        expired, or its integration changed since the request.
        """
        from bollard.platform.errors import ExecutionError
        from bollard.platform.invocation import Invocation

        await self.expiry.expire_due()
        row = await self.store.load(approval_id)
        if row is None:
            raise not_found(approval_id)
        current = self._serving(row)
        stale = row.status == "pending" and current is None
        if stale and await self.store.mark_stale(approval_id, "pending"):
            raise stale_error(row)
        if not await self.store.claim(approval_id, principal, "executing"):
            await self._refuse_claim(approval_id)
        # The registry may have changed while the claim was written: what runs is the
        # version that was checked, and only while it is still the one served (DESIGN §6).
        if current is None or self._serving(row) is None:
            await self.store.mark_stale(approval_id, "executing")
            raise stale_error(row)

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
        outcome: Outcome | None = None
        renewing = asyncio.get_running_loop().create_task(self.store.renew_lease(approval_id))
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
        await self.store.finish(approval_id, values)
        self.events.changed(approval_id)
        return await self.get(approval_id)
