"""``retries`` applies to read operations only (DESIGN §8): asking for it on a write, or
on an operation that needs approval, is refused with ``invalid_request`` naming ``retries``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration
from tests.support.paths import SHIPPED


@pytest.fixture
def folders(integrations_dir: Path, runtime: Runtime) -> None:
    shutil.copytree(SHIPPED / "hotel", integrations_dir / "hotel")
    ops = [
        {"name": "look", "operationType": "read"},
        {"name": "gated_read", "operationType": "read", "requiresApproval": True},
        {"name": "unguarded_write", "operationType": "write", "requiresApproval": False},
    ]
    write_integration(integrations_dir, "echo", manifest=rest_manifest(operations=ops))
    runtime.registry.load_all()


@pytest.mark.parametrize(
    ("slug", "op", "params"),
    [
        ("hotel", "cancel_reservation", {"id": 8}),  # write, needs approval
        ("echo", "unguarded_write", {}),  # write without approval
        ("echo", "gated_read", {}),  # read that needs approval
    ],
)
async def test_retries_on_a_write_is_refused(
    folders: None, api: Api, slug: str, op: str, params: dict
) -> None:
    r = await api.post(f"/api/integrations/{slug}/operations/{op}", json={"params": params, "retries": 2})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert "retries" in err["message"] and "read" in err["message"]
    # nothing was held for approval
    assert (await api.get("/api/approvals")).json().get("approvals", []) == []


async def test_retries_on_a_read_is_accepted_and_zero_on_a_write_is_fine(folders: None, api: Api) -> None:
    r = await api.post("/api/integrations/echo/operations/look", json={"params": {}, "retries": 2})
    assert r.status_code == 200, r.text
    r = await api.post("/api/integrations/echo/operations/unguarded_write", json={"params": {}, "retries": 0})
    assert r.status_code == 200, r.text
    r = await api.post(
        "/api/integrations/hotel/operations/cancel_reservation", json={"params": {"id": 8}, "retries": 0}
    )
    assert r.status_code == 202, r.text
