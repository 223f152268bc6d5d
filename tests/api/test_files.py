"""``ctx.files`` end to end with the Python runtime (DESIGN §3): a connector stores and
downloads files through the HTTP API; ``GET /api/files/{fileId}`` serves them to the
caller's token and admins, as attachments with ``nosniff``; the execution record lists
them; the caps, path tricks, header injection and a disallowed download host are refused.
Downloads reach a local HTTPS stand-in through the operator's resolve override."""

from __future__ import annotations

import base64
import os
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bollard.platform import tokens
from bollard.platform.files.store import ORPHAN_GRACE_S
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from bollard.platform.store.tables import files
from tests.support.api import app_client
from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import ServerThread, make_certificates

pytestmark = pytest.mark.asyncio(loop_scope="module")

UPSTREAM = "files.example.com"

CONNECTOR = textwrap.dedent(
    """
    def execute(ctx):
        p = ctx.params
        op = ctx.operation
        try:
            if op == "store" or op == "store_approved":
                return ctx.files.store(p["data"], encoding=p.get("encoding", "utf-8"),
                                       content_type=p.get("contentType"), file_name=p.get("fileName"))
            if op == "store_many":
                out = []
                for i in range(p["count"]):
                    out.append(ctx.files.store("x" * p["size"], file_name="part" + str(i) + ".txt"))
                return out
            if op == "download":
                return ctx.files.download(p["url"], headers={"Authorization": "Bearer t"},
                                          file_name=p.get("fileName"))
        except Exception as e:
            if p.get("raise"):
                raise
            return {"refused": e.code, "message": str(e)}
        raise Exception("unknown operation " + op)
    """
)


async def image(request: Request) -> Response:
    assert request.headers["authorization"] == "Bearer t"
    return Response(b"\x89PNG-bytes", media_type="image/png")


async def missing(request: Request) -> Response:
    return Response(b"nope", status_code=404)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"), (UPSTREAM,))
    app = Starlette(routes=[Route("/img/{name}", image), Route("/missing", missing)])
    with ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        yield server, ca


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[ServerThread, Path]
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    root = tmp_path_factory.mktemp("files")
    ops = ["store", "store_many", "download"]
    manifest = rest_manifest(
        operations=[
            {"name": n, "parametersSchema": {"type": "object", "additionalProperties": True}} for n in ops
        ]
        + [
            {
                "name": "store_approved",
                "operationType": "write",
                "requiresApproval": True,
                "parametersSchema": {"type": "object", "additionalProperties": True},
            }
        ],
        allowedHosts=[UPSTREAM],
    )
    write_integration(root / "integrations", "filer", manifest, CONNECTOR)
    settings = Settings(
        integrations_dir=root / "integrations",
        data_dir=root / "data",
        secret_key="k",
        reload=False,
        egress_resolve=f"{UPSTREAM}:443=127.0.0.1:{upstream[0].port}",
        egress_ca_bundle=upstream[1],
        max_file_bytes=1000,
        max_files_bytes_per_execution=2500,
        max_files_per_execution=4,
    )
    async with app_client(settings) as pair:
        yield pair


async def call(client: httpx.AsyncClient, op: str, params: dict[str, Any], **kw: Any) -> Any:
    r = await client.post(f"/api/integrations/filer/operations/{op}", json={"params": params}, **kw)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def path_of(url: str) -> str:
    return httpx.URL(url).path


async def test_a_stored_file_comes_back_with_safe_headers(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, rt = api
    ref = await call(
        client, "store", {"data": base64.b64encode(b"hi\x00there").decode(), "encoding": "base64",
                          "contentType": "text/html; charset=UTF-8", "fileName": "report.html"}
    )  # fmt: skip
    assert set(ref) == {"fileId", "url", "fileName", "contentType", "size"}
    assert (ref["fileName"], ref["contentType"], ref["size"]) == (
        "report.html",
        "text/html; charset=utf-8",
        8,
    )
    assert ref["url"] == f"http://127.0.0.1:8000/api/files/{ref['fileId']}"
    r = await client.get(path_of(ref["url"]))
    assert r.status_code == 200 and r.content == b"hi\x00there"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert (
        r.headers["content-disposition"]
        == "attachment; filename=\"report.html\"; filename*=UTF-8''report.html"
    )
    assert "sandbox" in r.headers["content-security-policy"]
    # On disk: only under its id, 0600.
    stored = rt.settings.data_dir / "files" / ref["fileId"]
    assert stored.read_bytes() == b"hi\x00there" and stored.stat().st_mode & 0o777 == 0o600


async def test_the_execution_record_lists_its_files(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    ref = await call(client, "store", {"data": "listed", "fileName": "l.txt"})
    listed = (
        await client.get("/api/executions", params={"integration": "filer", "operation": "store"})
    ).json()
    detail = (await client.get(f"/api/executions/{listed['executions'][0]['id']}")).json()
    assert detail["files"] == [ref]


async def test_only_the_caller_and_admins_may_read_a_file(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, rt = api
    agent = {"Authorization": f"Bearer {await tokens.create_token(rt.db, 'agent')}"}
    other = {"Authorization": f"Bearer {await tokens.create_token(rt.db, 'agent')}"}
    ref = await call(client, "store", {"data": "mine", "fileName": "m.txt"}, headers=agent)
    assert (await client.get(path_of(ref["url"]), headers=agent)).content == b"mine"
    assert (await client.get(path_of(ref["url"]))).status_code == 200  # admin
    refused = await client.get(path_of(ref["url"]), headers=other)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_file"
    anonymous = await client.get(path_of(ref["url"]), headers={"Authorization": ""})
    assert anonymous.status_code == 401
    for bogus in ("../../bollard.db", "not-a-uuid", "00000000-0000-4000-8000-000000000000"):
        assert (await client.get(f"/api/files/{bogus}")).status_code == 404


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/.hidden", "hidden"),
        ("..", "file"),
        ("a\u202egpj.exe", "agpj.exe"),
        ("x" * 240 + "\x00\x1b[2J\r\n.pdf", "x" * 240 + "[2J.pdf"),
    ],
)
async def test_path_tricks_in_file_names_only_label_the_file(
    api: tuple[httpx.AsyncClient, Runtime], given: str, kept: str
) -> None:
    client, rt = api
    ref = await call(client, "store", {"data": "x", "fileName": given})
    assert ref["fileName"] == kept
    assert sorted(os.listdir(rt.settings.data_dir / "files")).count(ref["fileId"]) == 1
    assert not (rt.settings.data_dir.parent / "etc").exists()


async def test_header_injection_through_the_file_name_stays_in_one_header(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = api
    ref = await call(
        client, "store", {"data": "x", "fileName": 'a"; filename=evil.html\r\nSet-Cookie: s=1\r\n.txt'}
    )
    r = await client.get(path_of(ref["url"]))
    assert "set-cookie" not in r.headers
    disposition = r.headers["content-disposition"]
    assert disposition.startswith(
        'attachment; filename="a__ filename_evil.htmlSet-Cookie_ s_1.txt"; filename*='
    )
    assert disposition.count('"') == 2


@pytest.mark.parametrize("content_type", ["text/html\r\nSet-Cookie: s=1", "text html", "image/png\x00"])
async def test_header_injection_through_the_content_type_is_refused(
    api: tuple[httpx.AsyncClient, Runtime], content_type: str
) -> None:
    client, _ = api
    answer = await call(client, "store", {"data": "x", "contentType": content_type})
    assert answer["refused"] == "connector_error"
    assert "is not a media type" in answer["message"]


async def test_an_oversized_file_is_refused(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    answer = await call(client, "store", {"data": "x" * 1001})
    assert answer["refused"] == "limit_exceeded"
    assert "limit of 1000 bytes per file" in answer["message"]
    r = await client.post(
        "/api/integrations/filer/operations/store", json={"params": {"data": "x" * 1001, "raise": True}}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "limit_exceeded"


async def test_the_per_execution_caps_hold(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    by_bytes = await call(client, "store_many", {"count": 3, "size": 900})
    assert (
        by_bytes["refused"] == "limit_exceeded" and "2500 bytes of files per execution" in by_bytes["message"]
    )
    by_count = await call(client, "store_many", {"count": 5, "size": 1})
    assert by_count["refused"] == "limit_exceeded" and "limit per execution" in by_count["message"]
    # A new execution starts with a fresh allowance.
    assert len(await call(client, "store_many", {"count": 2, "size": 900})) == 2


async def test_download_goes_through_the_egress_policy(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    ref = await call(client, "download", {"url": f"https://{UPSTREAM}/img/cat%20pic.png"})
    assert (ref["fileName"], ref["contentType"], ref["size"]) == ("cat pic.png", "image/png", 10)
    assert (await client.get(path_of(ref["url"]))).content == b"\x89PNG-bytes"
    named = await call(client, "download", {"url": f"https://{UPSTREAM}/img/x", "fileName": "../n.png"})
    assert named["fileName"] == "n.png"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.org/x",
        "https://127.0.0.1/x",
        "http://files.example.com/img/x",
        "file:///etc/passwd",
    ],
)
async def test_download_of_a_disallowed_host_is_refused(
    api: tuple[httpx.AsyncClient, Runtime], url: str
) -> None:
    client, rt = api
    before = len(os.listdir(rt.settings.data_dir / "files"))
    answer = await call(client, "download", {"url": url})
    assert answer["refused"] == "host_not_allowed", answer
    assert len(os.listdir(rt.settings.data_dir / "files")) == before


async def test_a_failed_download_stores_nothing(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    answer = await call(client, "download", {"url": f"https://{UPSTREAM}/missing"})
    assert answer["refused"] == "bad_response" and "answered 404" in answer["message"]


async def test_expired_files_are_gone(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, rt = api
    ref = await call(client, "store", {"data": "old"})
    await rt.jobs.stop()  # the start-up retention sweep must not prune it first
    async with rt.db.begin() as conn:
        await conn.execute(
            update(files)
            .where(files.c.id == ref["fileId"])
            .values(expires_at=datetime.now(UTC) - timedelta(1))
        )
    assert (await client.get(path_of(ref["url"]))).status_code == 404
    assert await rt.files.prune() >= 1
    assert not (rt.settings.data_dir / "files" / ref["fileId"]).exists()


async def test_the_orphan_sweep_removes_only_old_bytes_without_a_row(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    """Each replica's own sweep (the data directory is per replica, DESIGN §12): bytes
    whose row is gone and unfinished writes, once older than the grace period."""
    client, rt = api
    ref = await call(client, "store", {"data": "recorded"})
    await rt.files.close()  # the background sweep must not count them first
    folder = rt.settings.data_dir / "files"
    orphan, young = folder / str(uuid.uuid4()), folder / str(uuid.uuid4())
    unfinished, foreign = folder / f".{uuid.uuid4()}.tmp", folder / "notes.txt"
    for path in (orphan, young, unfinished, foreign):
        path.write_bytes(b"x")
    long_ago = time.time() - 2 * ORPHAN_GRACE_S
    for path in (orphan, unfinished, foreign, folder / ref["fileId"]):
        os.utime(path, (long_ago, long_ago))
    assert await rt.files.remove_orphans() == 2
    assert not orphan.exists() and not unfinished.exists()
    assert young.exists() and foreign.exists() and (folder / ref["fileId"]).exists()
    assert (await client.get(path_of(ref["url"]))).status_code == 200


async def test_healthz_says_the_resolve_override_is_active(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, rt = api
    health = (await client.get("/healthz")).json()
    port = rt.settings.egress_resolve.rsplit(":", 1)[1]  # type: ignore[union-attr]
    assert health["egressOverride"] == {
        "resolve": [f"{UPSTREAM}:443 -> 127.0.0.1:{port}"],
        "extraCaBundle": True,
    }


async def test_healthz_has_no_override_entry_without_one(tmp_path: Path) -> None:
    settings = Settings(
        integrations_dir=tmp_path / "i", data_dir=tmp_path / "d", secret_key="k", reload=False
    )
    async with app_client(settings) as (client, _):
        assert "egressOverride" not in (await client.get("/healthz")).json()


async def test_without_a_file_store_ctx_files_is_none(tmp_path: Path) -> None:
    manifest = rest_manifest(operations=[{"name": "probe"}])
    write_integration(
        tmp_path / "i", "nofiles", manifest, "def execute(ctx):\n    return ctx.files is None\n"
    )
    settings = Settings(
        integrations_dir=tmp_path / "i",
        data_dir=tmp_path / "d",
        secret_key="k",
        reload=False,
        files_enabled=False,
    )
    async with app_client(settings) as (client, _):
        r = await client.post("/api/integrations/nofiles/operations/probe", json={"params": {}})
        assert r.status_code == 200 and r.json()["data"] is True


async def test_the_requester_of_an_approved_write_may_read_its_files(
    api: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, rt = api
    agent = {"Authorization": f"Bearer {await tokens.create_token(rt.db, 'agent')}"}
    other = {"Authorization": f"Bearer {await tokens.create_token(rt.db, 'agent')}"}
    pending = await client.post(
        "/api/integrations/filer/operations/store_approved",
        json={"params": {"data": "approved", "fileName": "w.txt"}},
        headers=agent,
    )
    assert pending.status_code == 202, pending.text
    approval_id = pending.json()["approvalId"]
    assert (await client.post(f"/api/approvals/{approval_id}/approve")).status_code == 200  # an admin
    done = (await client.get(f"/api/approvals/{approval_id}", params={"wait": 30}, headers=agent)).json()
    assert done["status"] == "succeeded", done
    url = path_of(done["result"]["data"]["url"])
    assert (await client.get(url, headers=agent)).content == b"approved"
    assert (await client.get(url, headers=other)).status_code == 404
