"""Webhook deliveries: written with the approval change, sent by the job outbox (DESIGN §6, §12).

:meth:`Webhooks.approval_changed` runs inside the transaction that changes an approval's
status: for each configured endpoint that wants the event it stores a delivery (the event
body, frozen: the bytes that are signed) and enqueues its job on the same connection, so
an event exists exactly when its status change committed.

The job (:meth:`Webhooks.deliver`) POSTs the body with fresh signature headers
(:mod:`.signing`) through the egress sender under the webhook policy: the operator's
``BOLLARD_WEBHOOK_ALLOWED_HOSTS`` (the ``allowedHosts`` grammar) and the same address
checks as connector egress (loopback, private, link-local, metadata… refused unless
``BOLLARD_WEBHOOK_ALLOW_PRIVATE`` and an entry naming the host exactly); the connection
goes to the checked address. A ``2xx`` is delivered; a refusal by the policy is dead at
once; anything else is retried: after ``Retry-After`` (delta-seconds, capped by
``BOLLARD_WEBHOOK_MAX_RETRY_AFTER_S``) on ``429``/``503``, else with exponential backoff;
after ``BOLLARD_WEBHOOK_MAX_ATTEMPTS`` attempts the delivery is dead. Each retry is the
delivery row's update plus the next job, in one transaction; a job whose attempt number
does not match the row (a worker died after that commit) does nothing, so a crash sends
an attempt at most twice, never forks the chain. Receivers dedupe on the delivery id.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bollard.platform.errors import ApiError
from bollard.platform.retry import backoff, retry_after
from bollard.platform.store.tables import webhook_deliveries as deliveries
from bollard.platform.timestamps import iso_utc

from .events import EVENT_BY_STATUS, event_body
from .signing import signed_headers

if TYPE_CHECKING:
    from bollard.platform.egress import EgressClient, EgressPolicy
    from bollard.platform.jobs import Job, JobQueue
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import WebhookEndpoint

log = logging.getLogger("bollard.webhooks")

JOB_KIND = "webhook.deliver"
MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is read and dropped
DELIVERY_STATUSES = ("pending", "delivered", "dead")


def _shown_url(url: str) -> str:
    """The endpoint URL without query, fragment or user-info (they may hold a token)."""
    head, _, _ = url.partition("?")
    head = head.partition("#")[0]
    scheme, sep, rest = head.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def delivery_json(row: Any, *, with_event: bool = False) -> dict[str, Any]:
    """A delivery as the API shows it (timestamps ISO 8601 UTC); ``event`` (the JSON body
    sent) only when ``with_event``."""
    import json

    m = row._mapping
    out: dict[str, Any] = {
        "id": m["id"],
        "endpoint": m["endpoint"],
        "url": _shown_url(m["url"]),
        "eventId": m["event_id"],
        "eventType": m["event_type"],
        "approvalId": m["approval_id"],
        "status": m["status"],
        "attempts": m["attempts"],
        "lastStatusCode": m["last_status_code"],
        "lastError": m["last_error"],
        "createdAt": iso_utc(m["created_at"]),
        "lastAttemptAt": iso_utc(m["last_attempt_at"]),
        "nextAttemptAt": iso_utc(m["next_attempt_at"]),
        "deliveredAt": iso_utc(m["delivered_at"]),
        "redeliveryOf": m["redelivery_of"],
    }
    if with_event:
        out["event"] = json.loads(m["body"])
    return out


class Webhooks:
    """Approval notifications for one runtime; register with :meth:`register` on its jobs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._client: EgressClient | None = None
        self._policy: EgressPolicy | None = None

    @property
    def endpoints(self) -> dict[str, WebhookEndpoint]:
        """The configured endpoints by name (``BOLLARD_WEBHOOKS``)."""
        return {e.name: e for e in self.runtime.settings.webhooks}

    @property
    def policy(self) -> EgressPolicy:
        """The webhook egress policy (its own allowlist and private-address opt-in)."""
        if self._policy is None:
            from bollard.platform.egress import EgressPolicy

            s = self.runtime.settings
            self._policy = EgressPolicy(
                s.webhook_allowed_hosts,
                allow_private=s.webhook_allow_private,
                where="BOLLARD_WEBHOOK_ALLOWED_HOSTS",
                private_setting="BOLLARD_WEBHOOK_ALLOW_PRIVATE",
            )
        return self._policy

    @property
    def client(self) -> EgressClient:
        """A pinned egress client of its own (TLS: public CAs + ``BOLLARD_WEBHOOK_CA_BUNDLE``)."""
        if self._client is None:
            from bollard.platform.egress import make_client
            from bollard.platform.oauth2.token_endpoint import token_ssl_context

            ctx = token_ssl_context(self.runtime.settings.webhook_ca_bundle)
            self._client = make_client(ssl_context=ctx, max_connections=20)
        return self._client

    def register(self, jobs: JobQueue) -> None:
        jobs.handle(JOB_KIND, self.deliver)

    def check_configuration(self) -> list[str]:
        """Problems with the configured endpoints that need no network (a URL the webhook
        policy refuses by scheme, host or port); logged as warnings at start, since their
        deliveries would be dead at once. Addresses are checked at each delivery."""
        from bollard.sandbox.errors import HttpRequestRefused

        problems = []
        for endpoint in self.runtime.settings.webhooks:
            try:
                self.policy.check_url(endpoint.url)
            except HttpRequestRefused as e:
                problems.append(f"webhook endpoint '{endpoint.name}': {e.message}")
        for problem in problems:
            log.warning("%s", problem)
        return problems

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ enqueue

    async def approval_changed(self, conn: AsyncConnection, row: Any) -> int:
        """In the transaction of an approval's status change: store and enqueue one delivery
        per endpoint that wants the event (``row``: the approval row after the change).
        Returns how many; 0 (and no query) when no endpoint is configured."""
        endpoints = self.runtime.settings.webhooks
        if not endpoints:
            return 0
        from bollard.platform.approvals.rows import approval_json

        m = row._mapping if hasattr(row, "_mapping") else row
        event_type = EVENT_BY_STATUS.get(m["status"])
        wanted = [e for e in endpoints if event_type is not None and e.wants(event_type)]
        if event_type is None or not wanted:
            return 0
        now = datetime.now(UTC)
        event_id, body = event_body(event_type, approval_json(m), iso_utc(now) or "")
        for endpoint in wanted:
            await self._add(conn, endpoint, event_id, event_type, m["id"], body, now)
        return len(wanted)

    async def _add(
        self,
        conn: AsyncConnection,
        endpoint: WebhookEndpoint,
        event_id: str,
        event_type: str,
        approval_id: str | None,
        body: str,
        now: datetime,
        redelivery_of: str | None = None,
    ) -> str:
        delivery_id = str(uuid.uuid4())
        await conn.execute(
            deliveries.insert().values(
                id=delivery_id,
                endpoint=endpoint.name,
                url=endpoint.url,
                event_id=event_id,
                event_type=event_type,
                approval_id=approval_id,
                body=body,
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
                redelivery_of=redelivery_of,
            )
        )
        await self.runtime.jobs.enqueue(conn, JOB_KIND, {"deliveryId": delivery_id, "attempt": 1})
        return delivery_id

    # ------------------------------------------------------------------ deliver

    async def deliver(self, job: Job) -> None:
        """The job: one attempt of one delivery (see the module docstring)."""
        delivery_id = str(job.payload.get("deliveryId", ""))
        attempt = int(job.payload.get("attempt", 1))
        async with self.runtime.db.connect() as conn:
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        if row is None or row.status != "pending" or row.attempts != attempt - 1:
            return  # done, dead, or this attempt was already made (a worker died after it)
        endpoint = self.endpoints.get(row.endpoint)
        if endpoint is None:
            await self._record(
                row, attempt, None, f"endpoint '{row.endpoint}' is no longer in BOLLARD_WEBHOOKS", dead=True
            )
            return
        code, error, delay, dead = await self._attempt(row, endpoint)
        if code is not None and 200 <= code < 300:
            await self._record(row, attempt, code, None, delivered=True)
            return
        s = self.runtime.settings
        if delay is None:
            delay = backoff(attempt - 1, base_s=s.webhook_backoff_base_s, cap_s=s.webhook_backoff_cap_s)
        dead = dead or attempt >= s.webhook_max_attempts
        await self._record(row, attempt, code, error, dead=dead, retry_in_s=None if dead else delay)

    async def _attempt(
        self, row: Any, endpoint: WebhookEndpoint
    ) -> tuple[int | None, str | None, float | None, bool]:
        """POST once: ``(status code, error, Retry-After delay, refused by policy)``."""
        from bollard.platform.egress import send
        from bollard.sandbox.errors import HttpRequestRefused
        from bollard.sandbox.protocol import HttpRequest

        s = self.runtime.settings
        body = row.body.encode()
        secret = endpoint.secret.get_secret_value()
        headers = signed_headers(
            secret, int(time.time()), body, event_type=row.event_type, delivery_id=row.id
        )
        request = HttpRequest("POST", row.url, headers=headers, binary_body=body)
        try:
            response = await send(
                self.client,
                self.policy,
                request,
                max_response_bytes=MAX_RESPONSE_BYTES,
                timeout_s=s.webhook_timeout_s,
                secrets=(secret,),
            )
        except HttpRequestRefused as e:
            refused = e.code == "host_not_allowed"
            if refused:
                log.warning("webhook %s refused by the webhook egress policy: %s", endpoint.name, e.message)
            return None, f"{e.code}: {e.message}"[:2000], None, refused
        delay = None
        if response.status in (429, 503):
            delay = retry_after(response.headers.get("retry-after"), cap_s=s.webhook_max_retry_after_s)
        return (
            response.status,
            None if 200 <= response.status < 300 else f"HTTP {response.status}",
            delay,
            False,
        )

    async def _record(
        self,
        row: Any,
        attempt: int,
        code: int | None,
        error: str | None,
        *,
        delivered: bool = False,
        dead: bool = False,
        retry_in_s: float | None = None,
    ) -> None:
        """Store the attempt's outcome and, for a retry, enqueue the next attempt, in one
        transaction; only when the row still records ``attempt - 1`` attempts."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "attempts": attempt,
            "last_status_code": code,
            "last_error": error,
            "last_attempt_at": now,
            "next_attempt_at": None,
        }
        if delivered:
            values |= {"status": "delivered", "delivered_at": now}
        elif dead:
            values["status"] = "dead"
            log.warning("webhook delivery %s is dead after %d attempts: %s", row.id, attempt, error)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=retry_in_s or 0.0)
        async with self.runtime.db.begin() as conn:
            changed = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == row.id,
                    deliveries.c.status == "pending",
                    deliveries.c.attempts == attempt - 1,
                )
                .values(**values)
            )
            if changed.rowcount == 1 and not delivered and not dead:
                await self.runtime.jobs.enqueue(
                    conn,
                    JOB_KIND,
                    {"deliveryId": row.id, "attempt": attempt + 1},
                    delay_s=retry_in_s or 0.0,
                )

    async def prune(self, older_than: timedelta) -> int:
        """Delete delivered and dead deliveries created longer ago than ``older_than``
        (pending ones stay); returns how many."""
        cutoff = datetime.now(UTC) - older_than
        async with self.runtime.db.begin() as conn:
            result = await conn.execute(
                deliveries.delete().where(
                    deliveries.c.created_at < cutoff, deliveries.c.status.in_(("delivered", "dead"))
                )
            )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ list, redeliver

    async def list(
        self,
        *,
        status: str | None = None,
        event_type: str | None = None,
        approval_id: str | None = None,
        endpoint: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Deliveries newest first, and how many match."""
        conds = []
        for col, value in (
            (deliveries.c.status, status),
            (deliveries.c.event_type, event_type),
            (deliveries.c.approval_id, approval_id),
            (deliveries.c.endpoint, endpoint),
        ):
            if value is not None:
                conds.append(col == value)
        async with self.runtime.db.connect() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(deliveries).where(*conds))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(deliveries)
                    .where(*conds)
                    .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
                    .limit(max(1, min(limit, 500)))
                    .offset(max(0, offset))
                )
            ).all()
        return [delivery_json(r) for r in rows], int(total)

    async def get(self, delivery_id: str) -> dict[str, Any]:
        """One delivery with the ``event`` it sends; 404 ``not_found`` for an unknown id."""
        async with self.runtime.db.connect() as conn:
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise ApiError("not_found", f"no webhook delivery '{delivery_id[:80]}'", status=404)
        return delivery_json(row, with_event=True)

    async def redeliver(self, delivery_id: str) -> dict[str, Any]:
        """A new delivery of the same event (same body and event id, signed afresh) to the
        endpoint's current URL, queued now; ``redeliveryOf`` names the original. Raises
        404 ``not_found`` for an unknown id, 409 ``conflict`` when its endpoint is no
        longer configured."""
        async with self.runtime.db.connect() as conn:
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        if row is None:
            raise ApiError("not_found", f"no webhook delivery '{delivery_id[:80]}'", status=404)
        endpoint = self.endpoints.get(row.endpoint)
        if endpoint is None:
            raise ApiError(
                "conflict",
                f"endpoint '{row.endpoint}' is no longer configured; add it to BOLLARD_WEBHOOKS to redeliver",
                status=409,
            )
        async with self.runtime.db.begin() as conn:
            new_id = await self._add(
                conn,
                endpoint,
                row.event_id,
                row.event_type,
                row.approval_id,
                row.body,
                datetime.now(UTC),
                redelivery_of=row.id,
            )
        return await self.get(new_id)
