"""``GET /api/approvals/{id}?wait=SECONDS``: a long poll that answers once the approval is
decided (and, when approved, has run), or as it is when the wait ends (DESIGN §6, §9)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import update

from bollard.platform import tokens
from bollard.platform.approvals import events as approvals_events
from bollard.platform.runtime import Runtime
from bollard.platform.store.tables import approvals
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration


@pytest.fixture
async def pending(integrations_dir: Path, runtime: Runtime, api: Api) -> str:
    m = rest_manifest()
    m["operations"].append({"name": "write_it", "operationType": "write"})
    write_integration(integrations_dir, "echo", manifest=m)
    runtime.registry.reload("echo")
    r = await api.post("/api/integrations/echo/operations/write_it", role="agent", json={"params": {}})
    assert r.status_code == 202, r.text
    return str(r.json()["approvalId"])


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-reads far apart: only the in-process signal can end a wait before it runs out."""
    monkeypatch.setattr(approvals_events, "WAIT_POLL_S", 3600.0)


async def test_wait_answers_the_outcome_once_approved(pending: str, api: Api, no_polling: None) -> None:
    poll = asyncio.create_task(api.get(f"/api/approvals/{pending}", params={"wait": 30}, role="agent"))
    await asyncio.sleep(0)
    assert (await api.post(f"/api/approvals/{pending}/approve")).status_code == 200
    r = await poll
    assert r.status_code == 200
    body = r.json()
    # a poll that returned before the decision would say "pending"
    assert body["status"] == "succeeded" and body["result"]["success"] is True


async def test_wait_answers_a_rejection_with_its_reason(pending: str, api: Api, no_polling: None) -> None:
    poll = asyncio.create_task(api.get(f"/api/approvals/{pending}", params={"wait": 30}, role="agent"))
    await asyncio.sleep(0)
    r = await api.post(f"/api/approvals/{pending}/reject", json={"reason": "not today"})
    assert r.status_code == 200
    body = (await poll).json()
    assert body["status"] == "rejected" and body["reason"] == "not today"


async def test_wait_sees_a_decision_made_by_another_replica(pending: str, api: Api, runtime: Runtime) -> None:
    poll = asyncio.create_task(api.get(f"/api/approvals/{pending}", params={"wait": 30}, role="agent"))
    await asyncio.sleep(0)
    # another process sharing the state database decides it: no in-process signal here
    async with runtime.db.begin() as conn:
        await conn.execute(
            update(approvals).where(approvals.c.id == pending).values(status="rejected", reason="elsewhere")
        )
    body = (await poll).json()
    assert body["status"] == "rejected" and body["reason"] == "elsewhere"


async def test_wait_ends_with_the_approval_still_pending(pending: str, api: Api) -> None:
    r = await api.get(f"/api/approvals/{pending}", params={"wait": 0.3}, role="agent")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert (await api.get(f"/api/approvals/{pending}", params={"wait": 0})).json()["status"] == "pending"


async def test_wait_is_bounded_and_scoped(pending: str, api: Api, runtime: Runtime) -> None:
    for bad in ("61", "-1", "soon"):
        r = await api.get(f"/api/approvals/{pending}", params={"wait": bad})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", bad
    r = await api.get("/api/approvals/no-such-id", params={"wait": 5})
    assert r.status_code == 404
    other = await tokens.create_token(runtime.db, "agent")
    r = await api.client.get(
        f"/api/approvals/{pending}", params={"wait": 5}, headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 404  # agents see only their own approvals
    events = runtime.approvals.events
    assert events._events == {} and events._waiting == {}  # nothing left behind
