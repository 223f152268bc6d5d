"""The frame protocol for ``ctx.files`` and multipart ``form_fields`` with real Python
workers: what a connector passes reaches the host's handlers as checked plain data,
the FileReference comes back unchanged, refusals become exceptions the connector can
catch, and malformed worker messages are refused (DESIGN §3, §4.3)."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.frames import ProtocolError
from bollard.sandbox.job import Job
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from bollard.sandbox.protocol import (
    FileDownload,
    FileStore,
    HttpRequest,
    HttpResponse,
    parse_file_download,
    parse_file_store,
    parse_http_request,
)
from tests.support.deno import require_deno

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST = Limits(wall_time_ms=20_000, cpu_time_ms=5_000, max_http_requests=5)


class RecordingFiles:
    """A file handler that keeps what it was asked (the real store is tested in tests/api)."""

    def __init__(self) -> None:
        self.stored: list[FileStore] = []
        self.downloads: list[FileDownload] = []

    async def store(self, request: FileStore) -> dict[str, Any]:
        self.stored.append(request)
        if request.file_name == "refuse.txt":
            raise HttpRequestRefused("file_too_large", "the file is larger than the cap")
        return {
            "fileId": f"f{len(self.stored)}",
            "url": "/api/files/f1",
            "fileName": request.file_name or "file",
            "contentType": request.content_type or "application/octet-stream",
            "size": len(request.data),
        }

    async def download(self, request: FileDownload) -> dict[str, Any]:
        self.downloads.append(request)
        return {"fileId": "d1", "url": "/api/files/d1", "fileName": "x", "contentType": "a/b", "size": 3}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1)
    yield p
    await p.close()


async def run(
    pool: SandboxPool,
    source: str,
    http: Any,
    files: Any,
    key: str = "files:v1",
    filename: str = "connector.py",
) -> Any:
    return await pool.run(
        Job(
            key=key,
            source=textwrap.dedent(source),
            entrypoint="execute",
            operation="op",
            params={},
            secrets={},
            http_handler=http,
            limits=FAST,
            file_handler=files,
            filename=filename,
        )
    )


async def no_http(request: HttpRequest) -> HttpResponse:
    raise AssertionError("no HTTP request expected")


async def test_store_and_download_reach_the_file_handler(pool: SandboxPool) -> None:
    files = RecordingFiles()
    result = await run(
        pool,
        """
        def execute(ctx):
            a = ctx.files.store("aGVsbG8=", encoding="base64", content_type="text/plain", file_name="a.txt")
            b = ctx.files.store("héllo", file_name="b.txt")
            c = ctx.files.download("https://example.com/f", headers={"Authorization": "x"}, file_name="c.bin")
            try:
                ctx.files.store("x", file_name="refuse.txt")
                refused = None
            except Exception as e:
                refused = e.code
            return {"a": a, "b": b, "c": c, "refused": refused}
        """,
        no_http,
        files,
    )
    assert result.value["a"] == {
        "fileId": "f1",
        "url": "/api/files/f1",
        "fileName": "a.txt",
        "contentType": "text/plain",
        "size": 5,
    }
    assert result.value["refused"] == "file_too_large"
    assert [s.data for s in files.stored] == [b"hello", "héllo".encode(), b"x"]
    assert files.downloads == [
        FileDownload(url="https://example.com/f", headers={"Authorization": "x"}, file_name="c.bin")
    ]


async def test_without_a_file_store_ctx_files_is_none_and_messages_are_refused(pool: SandboxPool) -> None:
    result = await run(
        pool, "def execute(ctx):\n    return ctx.files is None\n", no_http, None, key="nofiles:v1"
    )
    assert result.value is True


async def test_bad_store_arguments_fail_in_the_connector(pool: SandboxPool) -> None:
    files = RecordingFiles()
    result = await run(
        pool,
        """
        def execute(ctx):
            out = []
            for args in (("!!notb64", "base64"), ("x", "latin-1")):
                try:
                    ctx.files.store(args[0], encoding=args[1])
                except Exception as e:
                    out.append(str(e))
            return out
        """,
        no_http,
        files,
    )
    assert "not valid base64" in result.value[0]
    assert "encoding must be" in result.value[1]
    assert files.stored == []


async def test_form_fields_reach_the_http_handler(pool: SandboxPool) -> None:
    seen: list[HttpRequest] = []

    async def http(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(200, "OK", {"content-type": "application/json"}, b'{"ok": true}')

    result = await run(
        pool,
        """
        def execute(ctx):
            r = ctx.http.post("https://example.com/up", form_fields=[
                {"name": "model", "value": "m"},
                {"name": "image", "value": "iVBORw==", "fileName": "i.png", "contentType": "image/png",
                 "isBase64": True},
            ])
            try:
                ctx.http.post("https://example.com/up", form_fields=[{"name": "a", "value": "b", "bogus": 1}])
            except Exception as e:
                return [r.body, str(e)]
        """,
        http,
        None,
    )
    assert result.value[0] == {"ok": True}
    assert "unknown key 'bogus'" in result.value[1]
    assert len(seen) == 1 and seen[0].form_fields is not None
    model, image = seen[0].form_fields
    assert (model.name, model.value, model.file_name, model.is_base64) == ("model", "m", None, False)
    assert (image.file_name, image.content_type, image.is_base64) == ("i.png", "image/png", True)
    assert base64.b64decode(image.value) == b"\x89PNG"


BASE_HTTP = {"type": "http", "method": "POST", "url": "https://x/", "headers": {}, "body": None}


@pytest.mark.parametrize(
    "message",
    [
        {**BASE_HTTP, "form_fields": {"name": "a"}},
        {**BASE_HTTP, "form_fields": [{"name": 1, "value": "v"}]},
        {**BASE_HTTP, "form_fields": [{"name": "a", "value": "v", "is_base64": "yes"}]},
        {**BASE_HTTP, "form_fields": [{"name": "a", "value": "v", "file_name": "x" * 300}]},
        {**BASE_HTTP, "form_fields": [{"name": "a", "value": "v"}] * 101},
        {**BASE_HTTP, "form_fields": [{"name": "a", "value": "v", "fileName": "camel.png"}]},
        {**BASE_HTTP, "body": "text", "form_fields": []},
    ],
)
async def test_malformed_form_fields_are_protocol_errors(message: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_http_request(message)


async def test_malformed_file_messages_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        parse_file_store({"type": "file_store", "file_name": 3}, b"x")
    with pytest.raises(ProtocolError):
        parse_file_download({"type": "file_download", "url": "https://x/", "headers": {"a": 1}})
    with pytest.raises(ProtocolError):
        parse_file_download({"type": "file_download", "headers": {}})


JS_CONNECTOR = """
const connector = {
  execute(ctx) {
    const a = ctx.files.store("aGVsbG8=", {
      encoding: "base64", contentType: "text/plain", fileName: "a.txt",
    });
    const b = ctx.files.store("h\u00e9llo", { fileName: "b.txt" });
    const c = ctx.files.download("https://example.com/f", {
      headers: { Authorization: "x" }, fileName: "c.bin",
    });
    let refused = null;
    try { ctx.files.store("x", { fileName: "refuse.txt" }); } catch (e) { refused = e.code; }
    const r = ctx.http.post("https://example.com/up", {
      formFields: [
        { name: "model", value: "m" },
        { name: "image", value: "iVBORw==", fileName: "i.png", contentType: "image/png", isBase64: true },
      ],
    });
    return { a, b, c, refused, status: r.status };
  },
};
"""


async def test_the_js_worker_speaks_the_same_frames(pool: SandboxPool) -> None:
    require_deno()
    files = RecordingFiles()
    seen: list[HttpRequest] = []

    async def http(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(200, "OK", {}, b"")

    result = await run(pool, JS_CONNECTOR, http, files, key="files-js:v1", filename="connector.ts")
    assert result.value["a"]["size"] == 5 and result.value["refused"] == "file_too_large"
    assert [s.data for s in files.stored] == [b"hello", "h\u00e9llo".encode(), b"x"]
    assert [(s.file_name, s.content_type) for s in files.stored[:2]] == [
        ("a.txt", "text/plain"),
        ("b.txt", None),
    ]
    assert files.downloads == [
        FileDownload(url="https://example.com/f", headers={"Authorization": "x"}, file_name="c.bin")
    ]
    (request,) = seen
    assert request.form_fields is not None
    model, image = request.form_fields
    assert (model.file_name, model.content_type, model.is_base64) == (None, None, False)
    assert (image.file_name, image.content_type, image.is_base64, image.value) == (
        "i.png",
        "image/png",
        True,
        "iVBORw==",
    )
