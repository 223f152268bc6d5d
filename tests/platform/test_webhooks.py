"""Approval notifications (DESIGN §6): signed webhooks from the job outbox, on a real local
HTTP(S) receiver, with the state database on SQLite and on PostgreSQL (same bodies)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.invocation import Invocation
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings, WebhookEndpoint
from bollard.platform.store.tables import webhook_deliveries
from bollard.platform.tokens import Principal
from tests.support.api import BASE_URL
from tests.support.integrations import rest_manifest, write_integration
from tests.support.jobs import BACKENDS, state_database_url, until
from tests.support.standin import make_certificates
from tests.support.webhooks import WebhookReceiver, readme_verify

SECRET = "a-webhook-secret-for-tests"
ADMIN = Principal("admin-token", "admin", "admin")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def webhook_runtime(
    backend: str, tmp: Path, url: str, *, allowed: list[str] | None = None, **overrides: Any
) -> AsyncIterator[Runtime]:
    """A started runtime with one endpoint ``ops`` at ``url`` and the ``gated``
    integration (one approval-gated write)."""
    integrations = tmp / "integrations"
    write_integration(
        integrations, "gated", manifest=rest_manifest(operations=[{"name": "send", "operationType": "write"}])
    )
    origin = url.split("/", 3)
    options: dict[str, Any] = {
        "webhook_allow_private": True,
        "webhook_backoff_base_s": 0.01,
        "webhook_backoff_cap_s": 0.05,
        "job_poll_s": 0.2,
    }
    async with state_database_url(backend, tmp / "state") as db_url:
        settings = Settings(
            integrations_dir=integrations,
            data_dir=tmp / "data",
            database_url=db_url,
            secret_key="test-secret-key",
            reload=False,
            webhooks=[WebhookEndpoint(name="ops", url=url, secret=SECRET)],  # type: ignore[arg-type]
            webhook_allowed_hosts=allowed if allowed is not None else [f"{origin[0]}//{origin[2]}"],
            **(options | overrides),
        )
        async with Runtime(settings) as rt:
            yield rt


async def request_approval(rt: Runtime) -> str:
    held = await rt.execution.invoke(Invocation("gated", "send", params={}, token_id="agent-token"))
    assert held.status == 202, held.body
    return str(held.body["approvalId"])


async def deliveries(rt: Runtime, **filters: Any) -> list[dict[str, Any]]:
    items, _ = await rt.webhooks.list(**filters)
    return items


async def settled(rt: Runtime, n: int) -> bool:
    items = await deliveries(rt)
    return len(items) >= n and all(d["status"] != "pending" for d in items)


async def test_every_status_change_is_a_signed_event_verified_by_the_readme_recipe(
    backend: str, tmp_path: Path
) -> None:
    verify = readme_verify()
    with WebhookReceiver() as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook") as rt:
            approved = await request_approval(rt)
            rejected = await request_approval(rt)
            done = await rt.approvals.approve(approved, ADMIN)
            assert done["status"] == "succeeded"
            await rt.approvals.reject(rejected, ADMIN, "not today")
            await until(lambda: settled(rt, 5), "five deliveries")
            items = await deliveries(rt)
            assert {d["status"] for d in items} == {"delivered"}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in receiver.received:
        assert r.path == "/hook"
        assert verify(SECRET, r.headers, r.body), r.headers
        assert not verify("another-secret-entirely", r.headers, r.body)
        assert not verify(SECRET, r.headers, r.body + b" ")  # a changed body fails
        event = json.loads(r.body)
        assert r.headers["x-bollard-event"] == event["type"]
        assert r.headers["content-type"] == "application/json"
        by_type.setdefault(event["type"], []).append(event)
    assert sorted(by_type) == [
        "approval.approved",
        "approval.rejected",
        "approval.requested",
        "approval.succeeded",
    ]
    assert [e["approval"]["id"] for e in by_type["approval.requested"]] in (
        [approved, rejected],
        [rejected, approved],
    )
    assert by_type["approval.succeeded"][0]["approval"]["status"] == "succeeded"
    assert "result" not in by_type["approval.succeeded"][0]["approval"]
    assert by_type["approval.rejected"][0]["approval"]["reason"] == "not today"
    stale = dict(receiver.received[0].headers, **{"x-bollard-timestamp": "1000000000"})
    assert not verify(SECRET, stale, receiver.received[0].body)  # too old: a replay


async def test_a_failed_operation_is_an_event(backend: str, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook") as rt:
            write_integration(
                rt.settings.integrations_dir,
                "gated",
                manifest=rest_manifest(operations=[{"name": "send", "operationType": "write"}]),
                connector="def execute(ctx):\n    raise ValueError('the target refused')\n",
            )
            rt.registry.reload("gated")
            aid = await request_approval(rt)
            assert (await rt.approvals.approve(aid, ADMIN))["status"] == "failed"
            await until(lambda: settled(rt, 3), "three deliveries")
    events = [json.loads(r.body) for r in receiver.received]
    assert sorted(e["type"] for e in events) == ["approval.approved", "approval.failed", "approval.requested"]
    (failed,) = [e for e in events if e["type"] == "approval.failed"]
    assert failed["approval"]["error"]["code"] == "connector_error"


async def test_429_retry_after_as_an_http_date_is_honoured(backend: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    def in_two_seconds() -> str:  # computed when the receiver answers
        return format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)

    with WebhookReceiver(script=[(503, {"Retry-After": in_two_seconds})]) as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook") as rt:
            await request_approval(rt)
            await until(lambda: settled(rt, 1), "the delivery")
            (d,) = await deliveries(rt)
    assert d["status"] == "delivered" and d["attempts"] == 2
    first, second = receiver.received
    assert second.at - first.at >= 0.95  # the date is 1-2 s ahead (it has whole seconds)


async def test_expiry_is_an_event(backend: str, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook") as rt:
            aid = await request_approval(rt)
            async with rt.db.begin() as conn:  # its TTL passes
                await conn.execute(
                    text("UPDATE approvals SET expires_at = requested_at WHERE id = :id"), {"id": aid}
                )
            await rt.approvals.expiry.expire_due()
            await until(lambda: settled(rt, 2), "the expiry's delivery")
            types = sorted(d["eventType"] for d in await deliveries(rt))
            assert types == ["approval.expired", "approval.requested"]


async def test_a_rolled_back_status_change_sends_nothing(backend: str, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook") as rt:
            row = {"id": "a" * 36, "status": "pending"}

            class Rollback(Exception):
                pass

            with pytest.raises(Rollback):
                async with rt.db.begin() as conn:
                    await conn.execute(text("SELECT 1"))
                    assert await rt.webhooks.approval_changed(conn, _approval_row(row)) == 1
                    raise Rollback
            async with rt.db.connect() as conn:
                assert (await conn.execute(select(webhook_deliveries))).all() == []
            assert (await rt.jobs.counts("webhook.deliver"))["queued"] == 0
    assert receiver.received == []


async def test_429_with_retry_after_is_honoured(backend: str, tmp_path: Path) -> None:
    with WebhookReceiver(script=[(429, {"Retry-After": "1"})]) as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook") as rt:
            await request_approval(rt)
            await until(lambda: settled(rt, 1), "the delivery")
            (d,) = await deliveries(rt)
    assert d["status"] == "delivered" and d["attempts"] == 2 and d["lastStatusCode"] == 200
    first, second = receiver.received
    assert second.at - first.at >= 0.95  # the second attempt waited for Retry-After: 1
    assert first.headers["x-bollard-delivery"] == second.headers["x-bollard-delivery"] == d["id"]


async def test_dead_after_max_attempts_then_redelivered_over_the_api(backend: str, tmp_path: Path) -> None:
    with WebhookReceiver(script=[(500, {})] * 3) as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook", webhook_max_attempts=3) as rt:
            aid = await request_approval(rt)
            await until(lambda: settled(rt, 1), "the delivery to die")
            (dead,) = await deliveries(rt)
            assert dead["status"] == "dead" and dead["attempts"] == 3
            assert dead["lastStatusCode"] == 500 and dead["lastError"] == "HTTP 500"
            assert receiver.count() == 3
            app = create_app(runtime=rt)
            admin = await tokens.create_token(rt.db, "admin")
            agent = await tokens.create_token(rt.db, "agent")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
                h = {"Authorization": f"Bearer {admin}"}
                listed = (await c.get("/api/webhooks/deliveries?status=dead", headers=h)).json()
                assert listed["total"] == 1 and listed["deliveries"][0]["id"] == dead["id"]
                assert listed["deliveries"][0]["approvalId"] == aid
                r = await c.get("/api/webhooks/deliveries", headers={"Authorization": f"Bearer {agent}"})
                assert r.status_code == 403
                r = await c.get("/api/webhooks/deliveries?colour=red", headers=h)
                assert r.status_code == 400
                r = await c.get("/api/webhooks/deliveries?status=dead&status=pending", headers=h)
                assert (
                    r.status_code == 400 and "'status' given more than once" in r.json()["error"]["message"]
                )
                r = await c.post("/api/webhooks/deliveries/nope/redeliver", headers=h)
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
                shown = (await c.get(f"/api/webhooks/deliveries/{dead['id']}", headers=h)).json()
                assert shown["event"]["type"] == "approval.requested"
                endpoints = (await c.get("/api/webhooks/endpoints", headers=h)).json()
                assert SECRET not in json.dumps(endpoints) and endpoints["endpoints"][0]["name"] == "ops"
                r = await c.post(f"/api/webhooks/deliveries/{dead['id']}/redeliver", headers=h)
                assert r.status_code == 202, r.text
                again = r.json()
                assert again["redeliveryOf"] == dead["id"] and again["eventId"] == dead["eventId"]
                await until(lambda: settled(rt, 2), "the redelivery")
                shown = (await c.get(f"/api/webhooks/deliveries/{again['id']}", headers=h)).json()
                assert shown["status"] == "delivered" and shown["attempts"] == 1
    assert receiver.received[-1].body == receiver.received[0].body  # the same event, signed afresh
    assert receiver.received[-1].headers["x-bollard-delivery"] == again["id"]


async def test_https_receiver_with_the_operators_ca(backend: str, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    verify = readme_verify()
    with WebhookReceiver(ssl_certfile=str(cert), ssl_keyfile=str(key)) as receiver:
        async with webhook_runtime(backend, tmp_path, f"{receiver.url}/hook", webhook_ca_bundle=ca) as rt:
            await request_approval(rt)
            await until(lambda: settled(rt, 1), "the delivery")
            (d,) = await deliveries(rt)
    assert d["status"] == "delivered", d
    assert verify(SECRET, receiver.received[0].headers, receiver.received[0].body)


@pytest.mark.parametrize(
    ("allowed", "private", "reason"),
    [
        ([], True, "BOLLARD_WEBHOOK_ALLOWED_HOSTS is empty"),
        (["hooks.example.com"], True, "not in BOLLARD_WEBHOOK_ALLOWED_HOSTS"),
        (None, False, "BOLLARD_WEBHOOK_ALLOW_PRIVATE"),  # allowlisted, but a loopback address
    ],
)
async def test_a_target_outside_the_webhook_policy_is_refused_and_never_contacted(
    backend: str, tmp_path: Path, allowed: list[str] | None, private: bool, reason: str
) -> None:
    with WebhookReceiver() as receiver:
        async with webhook_runtime(
            backend, tmp_path, f"{receiver.url}/hook", allowed=allowed, webhook_allow_private=private
        ) as rt:
            await request_approval(rt)
            await until(lambda: settled(rt, 1), "the refusal")
            (d,) = await deliveries(rt)
    assert d["status"] == "dead" and d["attempts"] == 1  # refused at once, no retries
    assert d["lastError"].startswith("host_not_allowed") and reason in d["lastError"], d["lastError"]
    assert receiver.received == []


async def test_metadata_and_private_addresses_are_refused_even_when_allowlisted(tmp_path: Path) -> None:
    # Traffic stays on loopback: these addresses are refused before any connection.
    for url in (
        "http://169.254.169.254/latest",
        "http://10.0.0.7:8080/hook",
        "http://[::ffff:127.0.0.1]:9/x",
    ):
        host = url.split("/")[2]
        async with webhook_runtime(
            "sqlite",
            tmp_path / host.replace(":", "_").strip("[]"),
            url,
            allowed=[f"http://{host}"],
            webhook_allow_private=False,
        ) as rt:
            await request_approval(rt)
            await until(lambda: settled(rt, 1), "the refusal")
            (d,) = await deliveries(rt)
            assert d["status"] == "dead" and "host_not_allowed" in d["lastError"], d


def _approval_row(overrides: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": "x" * 36,
        "integration": "gated",
        "operation": "send",
        "credential_id": "default",
        "params": {},
        "content_hash": "0" * 64,
        "version": 1,
        "summary": {},
        "status": "pending",
        "requested_by": None,
        "requested_at": now,
        "expires_at": now,
        "error_code": None,
        "error_message": None,
    }
    return row | overrides


def test_endpoints_and_the_allowlist_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "BOLLARD_WEBHOOKS",
        json.dumps(
            [
                {
                    "name": "ops",
                    "url": "https://hooks.example.com/b",
                    "secret": SECRET,
                    "events": ["approval.failed"],
                }
            ]
        ),
    )
    monkeypatch.setenv("BOLLARD_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com, http://127.0.0.1:9000")
    s = Settings()
    (endpoint,) = s.webhooks
    assert endpoint.wants("approval.failed") and not endpoint.wants("approval.requested")
    assert SECRET not in repr(s) and SECRET not in repr(endpoint)
    assert s.webhook_allowed_hosts == ["hooks.example.com", "http://127.0.0.1:9000"]
    monkeypatch.setenv("BOLLARD_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com/path")
    with pytest.raises(ValueError, match=r"BOLLARD_WEBHOOK_ALLOWED_HOSTS\[0\]"):
        Settings()
    monkeypatch.delenv("BOLLARD_WEBHOOK_ALLOWED_HOSTS")
    for bad in ({"events": ["approval.eaten"]}, {"secret": "short"}, {"name": "has space"}):
        item = {"name": "ops", "url": "https://hooks.example.com/b", "secret": SECRET} | bad
        monkeypatch.setenv("BOLLARD_WEBHOOKS", json.dumps([item]))
        with pytest.raises(ValueError):
            Settings()


async def test_a_misconfigured_endpoint_is_reported_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with webhook_runtime(
        "sqlite", tmp_path, "https://elsewhere.example.com/hook", allowed=["hooks.example.com"]
    ) as rt:
        (problem,) = rt.webhooks.check_configuration()
    assert "webhook endpoint 'ops'" in problem and "not in BOLLARD_WEBHOOK_ALLOWED_HOSTS" in problem
    assert any("webhook endpoint 'ops'" in r.getMessage() for r in caplog.records)
