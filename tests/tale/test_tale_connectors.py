"""Tale's 12 example integrations, copied unchanged, run in Bollard (issue 13, DESIGN §3).

Each folder (``config.json`` + ``connector.ts``) is copied byte for byte from
``../shared/corpus/tale-manifests/`` into a temporary integrations directory; Bollard
serves it over the HTTP API with the operator's resolve override sending every upstream
name to one local HTTPS stand-in (``tests/support/tale_standins.py``) whose CA is the
extra egress CA bundle. Each connector runs its ``testConnection`` and at least one read
operation; gmail, outlook and google_drive store or download a file through
``ctx.files``; ai-image sends multipart form fields with a binary file part; writes go
through approval. Nothing is mocked between the API and the stand-in: the JS runtime,
the egress policy (the names are checked against each manifest's ``allowedHosts``) and
TLS (verified for the upstream name) are the real ones.
"""

from __future__ import annotations

import base64
import filecmp
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.deno import require_deno
from tests.support.paths import CORPUS
from tests.support.standin import ServerThread, make_certificates
from tests.support.tale_standins import (
    DRIVE_FILE,
    HOSTS,
    PDF,
    PNG,
    RESOLVED_ONLY,
    SHOP,
    TWILIO_SID,
    Seen,
    make_app,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONNECTORS = (
    "ai-image",
    "circuly",
    "discord",
    "github",
    "gmail",
    "google_drive",
    "outlook",
    "shopify",
    "slack",
    "tavily",
    "teams",
    "twilio",
)

if not CORPUS.is_dir():  # the corpus sits beside the repository in the workspace
    pytest.skip(f"Tale's integrations are not at {CORPUS}", allow_module_level=True)


@dataclass
class Case:
    """One connector: its credential values, and a read operation with a check of its data."""

    credentials: dict[str, str]
    read: str
    params: dict[str, Any]
    check: Callable[[Any], None]
    extra: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _names(key: str) -> Callable[[Any], None]:
    def check(data: Any) -> None:
        assert [item[key] for item in data] == EXPECTED_NAMES[key]

    return check


EXPECTED_NAMES = {"full_name": ["octo/one", "octo/two"], "name": ["general", "random"]}


def _tavily(data: Any) -> None:
    assert [r["title"] for r in data["results"]] == ["Bollard"]


CASES: dict[str, Case] = {
    "tavily": Case({"apiKey": "tvly-test"}, "search", {"query": "bollard", "max_results": 1}, _tavily),
    "circuly": Case(
        {"username": "circ-user", "password": "circ-pass"},
        "list_products",
        {},
        lambda data: [p["name"] for p in data] == ["Bike", "Scooter"] or pytest.fail(str(data)),
    ),
    "discord": Case(
        {"accessToken": "discord-token"},
        "list_guilds",
        {},
        lambda data: [g["id"] for g in data] == ["g1", "g2"] or pytest.fail(str(data)),
    ),
    "github": Case({"accessToken": "ghp_test"}, "list_repos", {}, _names("full_name")),
    "gmail": Case(
        {"accessToken": "google-token"},
        "list_labels",
        {},
        lambda data: [label["id"] for label in data] == ["INBOX", "L1"] or pytest.fail(str(data)),
    ),
    "google_drive": Case(
        {"accessToken": "google-token"},
        "list_files",
        {"folderId": "folder-1"},
        lambda data: [f["name"] for f in data["files"]] == ["numbers.csv"] or pytest.fail(str(data)),
    ),
    "outlook": Case(
        {"accessToken": "ms-token"},
        "get_attachments",
        {"messageId": "om1"},
        lambda data: [a["name"] for a in data] == ["report.pdf", "photo.png"] or pytest.fail(str(data)),
    ),
    "shopify": Case(
        {"domain": SHOP, "accessToken": "shpat_test"},
        "list_products",
        {},
        lambda data: [p["title"] for p in data] == ["Mug"] or pytest.fail(str(data)),
    ),
    "slack": Case({"accessToken": "xoxb-test"}, "list_channels", {}, _names("name")),
    "teams": Case(
        {"accessToken": "ms-token"},
        "list_teams",
        {},
        lambda data: [t["id"] for t in data] == ["t1"] or pytest.fail(str(data)),
    ),
    "twilio": Case(
        {"username": TWILIO_SID, "password": "twilio-secret"},
        "list_messages",
        {},
        lambda data: [m["sid"] for m in data] == ["SM1"] or pytest.fail(str(data)),
    ),
    # ai-image has only writes (create, edit; both need approval): see its own tests below.
    "ai-image": Case(
        {"domain": "https://api.openai.com", "accessToken": "sk-test"}, "", {}, lambda data: None
    ),
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path, Seen]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"), HOSTS)
    seen = Seen()
    with ServerThread(make_app(seen), ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        yield server, ca, seen


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, standin: tuple[ServerThread, Path, Seen]
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    server, ca, _ = standin
    root = tmp_path_factory.mktemp("tale")
    integrations = root / "integrations"
    for name in CONNECTORS:
        shutil.copytree(CORPUS / name, integrations / name)
        same = filecmp.dircmp(CORPUS / name, integrations / name)
        assert not same.diff_files and not same.left_only and not same.right_only  # unchanged
    settings = Settings(
        integrations_dir=integrations,
        data_dir=root / "data",
        secret_key="k",
        reload=False,
        egress_resolve=",".join(f"{host}:443=127.0.0.1:{server.port}" for host in HOSTS + RESOLVED_ONLY),
        egress_ca_bundle=ca,
    )
    require_deno()
    async with app_client(settings) as (client, rt):
        for name in CONNECTORS:
            r = await client.put(
                f"/api/integrations/{name}/credentials", json={"values": CASES[name].credentials}
            )
            assert r.status_code == 200, r.text
        yield client, rt


def load_errors(rt: Runtime) -> dict[str, list[str]]:
    return {e.slug: [str(x) for x in e.errors] for e in rt.registry.entries() if e.errors}


async def invoke(client: httpx.AsyncClient, slug: str, op: str, params: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/api/integrations/{slug}/operations/{op}", json={"params": params})


async def test_all_twelve_load_unchanged(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, rt = api
    assert load_errors(rt) == {}
    catalog = (await client.get("/api/integrations")).json()
    listed = catalog["integrations"] if isinstance(catalog, dict) else catalog
    assert set(CONNECTORS) <= {item["slug"] for item in listed}


@pytest.mark.parametrize("slug", CONNECTORS)
async def test_connection(api: tuple[httpx.AsyncClient, Runtime], standin: Any, slug: str) -> None:
    client, _ = api
    r = await client.post(f"/api/integrations/{slug}/test")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is True, report


@pytest.mark.parametrize("slug", [s for s in CONNECTORS if CASES[s].read])
async def test_read_operation(api: tuple[httpx.AsyncClient, Runtime], slug: str) -> None:
    client, _ = api
    case = CASES[slug]
    r = await invoke(client, slug, case.read, case.params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True, body
    case.check(connector_data(body))


# --- ctx.files: gmail, outlook, google_drive -------------------------------------------------


async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    r = await client.get(httpx.URL(url).path)
    assert r.status_code == 200, r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment;")
    return r


def connector_data(body: dict[str, Any]) -> Any:
    """The connector's own ``data`` inside Bollard's envelope (Tale connectors return
    ``{success, operation, data, …}``, which Bollard passes through as ``data``)."""
    inner = body["data"]
    return inner["data"] if isinstance(inner, dict) and "data" in inner else inner


async def test_gmail_stores_attachments_through_ctx_files(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    r = await invoke(client, "gmail", "get_attachments", {"messageId": "msg1"})
    assert r.status_code == 200, r.text
    (attachment,) = connector_data(r.json())
    assert (attachment["name"], attachment["contentType"], attachment["contentId"]) == (
        "invoice.pdf",
        "application/pdf",
        "inv1",
    )
    stored = await fetch(client, attachment["url"])
    assert stored.content == PDF and stored.headers["content-type"] == "application/pdf"


async def test_outlook_stores_and_downloads_attachments(
    api: tuple[httpx.AsyncClient, Runtime], standin: Any
) -> None:
    client, _ = api
    r = await invoke(client, "outlook", "get_attachments", {"messageId": "om1"})
    assert r.status_code == 200, r.text
    inline, downloaded = connector_data(r.json())
    assert (await fetch(client, inline["url"])).content == PDF  # files.store (contentBytes)
    assert (await fetch(client, downloaded["url"])).content == PNG  # files.download ($value)
    hits = standin[2].to("graph.microsoft.com", "/v1.0/me/messages/om1/attachments/oa2/$value")
    assert hits and hits[-1].headers["authorization"] == "Bearer ms-token"


async def test_google_drive_downloads_a_file(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    r = await invoke(client, "google_drive", "download_file", {"fileId": "f1", "fileName": "numbers.csv"})
    assert r.status_code == 200, r.text
    data = connector_data(r.json())
    assert (data["fileName"], data["size"]) == ("numbers.csv", len(DRIVE_FILE))
    assert (await fetch(client, data["url"])).content == DRIVE_FILE


async def test_the_execution_record_lists_the_stored_files(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    listed = (
        await client.get("/api/executions", params={"integration": "outlook", "operation": "get_attachments"})
    ).json()
    detail = (await client.get(f"/api/executions/{listed['executions'][0]['id']}")).json()
    assert [f["fileName"] for f in detail["files"]] == ["report.pdf", "photo.png"]


# --- writes through approval; ai-image's multipart edit -------------------------------------------


async def approve(client: httpx.AsyncClient, slug: str, op: str, params: dict[str, Any]) -> dict[str, Any]:
    pending = await invoke(client, slug, op, params)
    assert pending.status_code == 202, pending.text
    approval_id = pending.json()["approvalId"]
    decided = await client.post(f"/api/approvals/{approval_id}/approve")
    assert decided.status_code == 200, decided.text
    done = (await client.get(f"/api/approvals/{approval_id}", params={"wait": 30})).json()
    assert done["status"] == "succeeded", done
    result: dict[str, Any] = done["result"]
    return result


async def test_a_write_goes_through_approval(api: tuple[httpx.AsyncClient, Runtime], standin: Any) -> None:
    client, _ = api
    before = len(standin[2].to("discord.com", "/api/v10/channels/c42/messages"))
    pending = await invoke(client, "discord", "send_message", {"channel_id": "c42", "content": "hi"})
    assert pending.status_code == 202
    assert len(standin[2].to("discord.com", "/api/v10/channels/c42/messages")) == before  # nothing sent yet
    approval_id = pending.json()["approvalId"]
    assert (await client.post(f"/api/approvals/{approval_id}/approve")).status_code == 200
    done = (await client.get(f"/api/approvals/{approval_id}", params={"wait": 30})).json()
    assert done["status"] == "succeeded", done
    sent = standin[2].to("discord.com", "/api/v10/channels/c42/messages")
    assert len(sent) == before + 1 and sent[-1].json()["content"] == "hi"


async def test_ai_image_create_stores_the_image(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    result = await approve(client, "ai-image", "create", {"prompt": "a bollard"})
    (image,) = connector_data(result)["images"]
    assert image["contentType"] == "image/png" and image["fileName"].startswith("generated_")
    assert (await fetch(client, image["url"])).content == PNG


async def test_ai_image_edit_sends_multipart_with_a_binary_part(
    api: tuple[httpx.AsyncClient, Runtime], standin: Any
) -> None:
    client, _ = api
    result = await approve(
        client,
        "ai-image",
        "edit",
        {"prompt": "make it red", "image": "https://api.openai.com/fixtures/source.png"},
    )
    (image,) = connector_data(result)["images"]
    assert (await fetch(client, image["url"])).content == PNG[::-1]
    (edit,) = standin[2].to("api.openai.com", "/v1/images/edits")[-1:]
    assert edit.headers["authorization"] == "Bearer sk-test"
    assert edit.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = {part["name"]: part for part in edit.form}
    assert parts["model"]["value"] == "gpt-image-1" and parts["prompt"]["value"] == "make it red"
    assert parts["image"]["fileName"] == "image.png" and parts["image"]["contentType"] == "image/png"
    assert parts["image"]["data"] == PNG  # the base64 value went out as the file's bytes
    assert base64.b64encode(parts["image"]["data"]).decode() == base64.b64encode(PNG).decode()
