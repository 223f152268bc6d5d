"""What the API fuzzing (schemathesis, ``make fuzz`` and ``st run --checks all``) found, each
with the fix's observable behaviour."""

from __future__ import annotations

import pytest

from tests.support.api import Api


async def test_a_405_lists_every_method_of_the_path(api: Api) -> None:
    # PUT and DELETE of one path are two routes; Starlette's Allow named only the first.
    r = await api.client.request("OPTIONS", "/api/integrations/x/credentials", headers=api.admin)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "DELETE, PUT"
    assert "accepts DELETE, PUT" in r.json()["error"]["message"]
    r = await api.client.request("PATCH", "/api/tokens", headers=api.admin)
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("since", ["0.5", "1700000000", "2026-12-01", "yesterday", "2026-13-01T00:00:00Z"])
async def test_since_must_be_an_iso_8601_date_and_time(api: Api, since: str) -> None:
    # A bare number was read as epoch seconds (0.5 → 1970), silently returning everything.
    r = await api.get("/api/executions", params={"since": since})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request" and "since" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "since",
    ["2026-12-01T09:30:00Z", "2026-12-01T09:30:00+02:00", "2026-12-01 09:30", "2026-12-01T09:30:00.5"],
)
async def test_iso_8601_since_is_accepted(api: Api, since: str) -> None:
    r = await api.get("/api/executions", params={"since": since})
    assert r.status_code == 200, r.text


async def test_a_naive_since_is_utc(api: Api) -> None:
    await api.post("/api/integrations/nope/operations/x", json={"params": {}})  # one record, now
    assert (await api.get("/api/executions", params={"since": "2000-01-01T00:00:00"})).json()["total"] == 1
    assert (await api.get("/api/executions", params={"since": "2999-01-01T00:00:00"})).json()["total"] == 0


async def test_the_documented_approval_statuses_are_an_enum(api: Api) -> None:
    # "?status=" was schema-valid (any string) but answered 400: the document now lists them.
    doc = (await api.client.get("/openapi.json")).json()
    (param,) = [p for p in doc["paths"]["/api/approvals"]["get"]["parameters"] if p["name"] == "status"]
    assert param["schema"]["enum"] == [
        "pending",
        "approved",
        "executing",
        "succeeded",
        "failed",
        "rejected",
        "expired",
    ]
    assert (await api.get("/api/approvals", params={"status": ""})).status_code == 400
    assert (await api.get("/api/approvals", params={"status": "pending"})).status_code == 200
    (since,) = [p for p in doc["paths"]["/api/executions"]["get"]["parameters"] if p["name"] == "since"]
    assert since["schema"]["format"] == "date-time"
