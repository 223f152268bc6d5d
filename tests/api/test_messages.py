"""Messages that reach users name real routes with the slug and credential id filled in,
and only what exists (no settings page yet); the default credential can be deleted by
``DELETE /api/integrations/{slug}/credentials``."""

from __future__ import annotations

from pathlib import Path

from tests.support.integrations import rest_manifest, write_integration


async def test_credential_messages_name_the_route_to_fix_it(runtime, api, integrations_dir: Path) -> None:
    write_integration(
        integrations_dir, "keyed", manifest=rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    )
    runtime.registry.reload("keyed")
    r = await api.post("/api/integrations/keyed/operations/echo", json={"params": {}})
    error = r.json()["error"]
    assert error["code"] == "needs_credentials"
    assert error["message"].endswith("set them with PUT /api/integrations/keyed/credentials")
    assert "{slug}" not in error["message"] and "settings page" not in error["message"]
    r = await api.post("/api/integrations/keyed/operations/echo", json={"params": {}, "credentialId": "prod"})
    error = r.json()["error"]
    assert error["code"] == "unknown_credential"
    assert "PUT /api/integrations/keyed/credentials/prod" in error["message"] and "{" not in error["message"]


async def test_delete_the_default_credential_without_an_id(runtime, api, integrations_dir: Path) -> None:
    write_integration(
        integrations_dir, "keyed", manifest=rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    )
    runtime.registry.reload("keyed")
    r = await api.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "k-1"}})
    assert r.status_code == 200 and r.json()["status"] == "ready"
    r = await api.delete("/api/integrations/keyed/credentials")
    assert r.status_code == 200 and r.json() == {
        "integration": "keyed",
        "credentialId": "default",
        "deleted": True,
    }
    r = await api.get("/api/integrations/keyed")
    assert r.json()["status"] == "needs_credentials"
    r = await api.delete("/api/integrations/keyed/credentials")
    assert r.status_code == 404
    r = await api.delete("/api/integrations/keyed/credentials", role="agent")
    assert r.status_code == 403
