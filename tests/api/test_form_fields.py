"""Multipart ``form_fields`` from a Python connector, end to end (DESIGN §3): through the
HTTP API, the sandbox, the egress policy and the operator's resolve override to a local
HTTPS stand-in, which parses the multipart body. Also: the resolve override comes only
from the operator, never from a manifest."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import ServerThread, make_certificates
from tests.support.tale_standins import PNG, Seen, make_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONNECTOR = textwrap.dedent(
    """
    def execute(ctx):
        fields = [
            {"name": "model", "value": "gpt-image-1"},
            {"name": "prompt", "value": ctx.params["prompt"]},
            {"name": "image", "value": ctx.params["image"], "file_name": "in.png",
             "content_type": "image/png", "is_base64": True},
        ]
        r = ctx.http.post("https://api.openai.com/v1/images/edits",
                          headers={"Authorization": "Bearer sk-test"}, form_fields=fields)
        return {"status": r.status, "images": len(r.body["data"])}
    """
)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path, Seen]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"), ("api.openai.com",))
    seen = Seen()
    with ServerThread(make_app(seen), ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        yield server, ca, seen


def manifest(**extra: Any) -> dict[str, Any]:
    return rest_manifest(
        operations=[{"name": "edit", "parametersSchema": {"type": "object", "additionalProperties": True}}],
        allowedHosts=["api.openai.com"],
        **extra,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, standin: tuple[ServerThread, Path, Seen]
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    root = tmp_path_factory.mktemp("forms")
    write_integration(root / "integrations", "imager", manifest(), CONNECTOR)
    settings = Settings(
        integrations_dir=root / "integrations",
        data_dir=root / "data",
        secret_key="k",
        reload=False,
        egress_resolve=f"api.openai.com:443=127.0.0.1:{standin[0].port}",
        egress_ca_bundle=standin[1],
    )
    async with app_client(settings) as pair:
        yield pair


async def test_form_fields_arrive_as_multipart_parts(
    api: tuple[httpx.AsyncClient, Runtime], standin: tuple[ServerThread, Path, Seen]
) -> None:
    client, _ = api
    params = {"prompt": "ünïcode", "image": base64.b64encode(PNG).decode()}
    r = await client.post("/api/integrations/imager/operations/edit", json={"params": params})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"status": 200, "images": 1}
    (hit,) = standin[2].to("api.openai.com", "/v1/images/edits")
    assert [p["name"] for p in hit.form] == ["model", "prompt", "image"]
    assert hit.form[1]["value"] == "ünïcode"
    assert (hit.form[2]["fileName"], hit.form[2]["contentType"], hit.form[2]["data"]) == (
        "in.png",
        "image/png",
        PNG,
    )


async def test_a_manifest_cannot_set_the_resolve_override(tmp_path: Path) -> None:
    # A top-level key is refused; connectionConfig is an open object, but the override is
    # read from the operator's settings only: it stays empty and /healthz reports none.
    integrations = tmp_path / "integrations"
    write_integration(
        integrations, "sneaky", manifest(egressResolve="api.openai.com:443=127.0.0.1:1"), CONNECTOR
    )
    write_integration(
        integrations,
        "quiet",
        manifest(connectionConfig={"egressResolve": "api.openai.com:443=127.0.0.1:1"}),
        CONNECTOR,
    )
    settings = Settings(integrations_dir=integrations, data_dir=tmp_path / "d", secret_key="k", reload=False)
    async with app_client(settings) as (client, rt):
        errors = {e.slug: " ".join(str(x) for x in e.errors) for e in rt.registry.entries()}
        assert "egressResolve" in errors["sneaky"]
        assert errors["quiet"] == ""
        assert rt.egress_override.describe() == []
        assert "egressOverride" not in (await client.get("/healthz")).json()
