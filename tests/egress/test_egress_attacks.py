"""Attack tests: hostile upstreams against the host's sender (hardening issue items 1, 2, 4).

Each upstream is a raw asyncio TCP server on 127.0.0.1 that answers with bytes written
here (decompression bombs, one-byte chunks, endless ``100 Continue``, chunk extensions
that cost wire bytes but no body), or a pair of uvicorn servers on two loopback ports
(a redirect to another origin). Each test asserts the refusal code and that the request
ended before its own wall time (the refusal is not the timeout).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bollard.platform.egress import EgressClient, EgressPolicy, make_client, send
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HttpRequest, HttpResponse
from tests.support.standin import ServerThread

WALL_S = 10.0  # each request's own deadline; a refusal must come before it

Payload = Callable[[], Iterator[bytes]]


class RawUpstream:
    """A TCP server on 127.0.0.1 answering every request with ``payload()``'s bytes."""

    def __init__(self) -> None:
        self.payload: Payload = lambda: iter(())
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for piece in self.payload():
                writer.write(piece)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up on us: that is the point
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[RawUpstream]:
    raw = RawUpstream()
    await raw.start()
    yield raw
    await raw.stop()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[EgressClient]:
    egress = make_client()
    yield egress
    await egress.aclose()


def head(*lines: str) -> bytes:
    return ("\r\n".join(["HTTP/1.1 200 OK", *lines]) + "\r\n\r\n").encode()


def body_with(content_encoding: str, body: bytes) -> Payload:
    return lambda: iter(
        [head(f"Content-Encoding: {content_encoding}", f"Content-Length: {len(body)}") + body]
    )


async def get(
    client: EgressClient, upstream: RawUpstream, *, max_response_bytes: int = 10 << 20
) -> HttpResponse:
    policy = EgressPolicy([f"http://127.0.0.1:{upstream.port}"], allow_private=True)
    request = HttpRequest("GET", f"http://127.0.0.1:{upstream.port}/")
    return await send(client, policy, request, max_response_bytes=max_response_bytes, timeout_s=WALL_S)


async def refused(client: EgressClient, upstream: RawUpstream, **limits: Any) -> HttpRequestRefused:
    started = time.monotonic()
    with pytest.raises(HttpRequestRefused) as info:
        await get(client, upstream, **limits)
    assert time.monotonic() - started < WALL_S  # ended by a budget, not by its deadline
    return info.value


# ----------------------------------------------------------------- item 1: content-codings


async def test_stacked_gzip_bomb_is_refused_without_inflating(
    client: EgressClient, upstream: RawUpstream
) -> None:
    bomb = gzip.compress(gzip.compress(bytes(32 << 20), 9), 9)  # ~1 KB -> 32 MiB
    upstream.payload = body_with("gzip, gzip", bomb)
    error = await refused(client, upstream)
    assert error.code == "limit_exceeded"
    assert "stacked content-codings" in error.message
    assert "gzip, gzip" in error.message


async def test_one_gzip_layer_is_inflated_only_up_to_the_budget(
    client: EgressClient, upstream: RawUpstream
) -> None:
    bomb = gzip.compress(bytes(32 << 20), 9)  # ~32 KB on the wire -> 32 MiB
    upstream.payload = body_with("gzip", bomb)
    tracemalloc.start()
    try:
        error = await refused(client, upstream, max_response_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "limit_exceeded"
    assert "larger than 1048576 bytes" in error.message
    assert peak < 16 << 20  # the host never held the 32 MiB


@pytest.mark.parametrize("coding", ["zstd", "compress", "x-custom"])
async def test_unknown_content_coding_is_refused(
    coding: str, client: EgressClient, upstream: RawUpstream
) -> None:
    upstream.payload = body_with(coding, b"\x28\xb5\x2f\xfd anything")
    error = await refused(client, upstream)
    assert error.code == "limit_exceeded"
    assert "Content-Encoding" in error.message
    assert coding in error.message


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # RFC 9110: zlib-wrapped
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
        ("identity", lambda b: b),
    ],
)
async def test_one_coding_is_decoded(
    coding: str, encode: Callable[[bytes], bytes], client: EgressClient, upstream: RawUpstream
) -> None:
    document = json.dumps({"items": list(range(2000))}).encode()
    upstream.payload = body_with(coding, encode(document))
    response = await get(client, upstream)
    assert response.status == 200
    assert response.body == document


async def test_corrupt_gzip_is_a_network_error(client: EgressClient, upstream: RawUpstream) -> None:
    upstream.payload = body_with("gzip", b"\x1f\x8b\x08\x00not gzip at all")
    error = await refused(client, upstream)
    assert error.code == "network_error"
    assert "content-coding" in error.message


# ----------------------------------------------------------------- item 2: events and wire bytes


async def test_one_byte_chunks_end_at_the_event_budget(client: EgressClient, upstream: RawUpstream) -> None:
    def trickle() -> Iterator[bytes]:
        yield head("Transfer-Encoding: chunked")
        for _ in range(400):  # 2 MB of body as 2,000,000 one-byte chunks, 12 MB on the wire
            yield b"1\r\nx\r\n" * 5000

    upstream.payload = trickle
    error = await refused(client, upstream)
    assert error.code == "limit_exceeded"
    assert "pieces" in error.message


async def test_endless_100_continue_ends_the_request(client: EgressClient, upstream: RawUpstream) -> None:
    def interim() -> Iterator[bytes]:
        while True:
            yield b"HTTP/1.1 100 Continue\r\n\r\n" * 1000

    upstream.payload = interim
    error = await refused(client, upstream)
    assert error.code == "limit_exceeded"
    assert "1xx" in error.message


async def test_raw_bytes_on_the_wire_are_capped(client: EgressClient, upstream: RawUpstream) -> None:
    # Chunk extensions cost wire bytes and parser time but add nothing to the body.
    def padded() -> Iterator[bytes]:
        yield head("Transfer-Encoding: chunked")
        while True:
            yield b"1;" + b"e" * 4000 + b"\r\nx\r\n"

    upstream.payload = padded
    error = await refused(client, upstream, max_response_bytes=1 << 20)
    assert error.code == "limit_exceeded"
    assert "on the wire" in error.message


# ----------------------------------------------------------------- item 4: redirects across origins

SECRET = "sk_live_0123456789abcdef"


class Recorder:
    """What the second origin received: method, lower-cased headers, body."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def record(self, request: Request) -> Response:
        body = await request.body()
        self.seen.append({"method": request.method, "headers": dict(request.headers), "body": body})
        return JSONResponse({"ok": True})


RECORDER = Recorder()


async def bounce(request: Request) -> Response:
    return RedirectResponse(request.query_params["to"], status_code=int(request.query_params["status"]))


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[ServerThread, ServerThread]]:
    methods = ["GET", "POST", "PUT", "DELETE"]
    first = Starlette(routes=[Route("/bounce", bounce, methods=methods)])
    second = Starlette(routes=[Route("/steal", RECORDER.record, methods=methods)])
    with ServerThread(first) as a, ServerThread(second) as b:
        yield a, b


async def redirected(
    client: EgressClient,
    origins: tuple[ServerThread, ServerThread],
    status: int,
    request: HttpRequest,
    **kwargs: Any,
) -> HttpResponse:
    a, b = origins
    policy = EgressPolicy([a.url, b.url], allow_private=True)
    RECORDER.seen.clear()
    return await send(client, policy, request, max_response_bytes=1 << 20, timeout_s=WALL_S, **kwargs)


def bounce_url(origins: tuple[ServerThread, ServerThread], status: int) -> str:
    a, b = origins
    return f"{a.url}/bounce?status={status}&to={b.url}/steal"


CREDENTIALS = {
    "X-API-Key": SECRET,
    "X-Shopify-Access-Token": SECRET,
    "Authorization": f"Bearer {SECRET}",
    "X-Request-Id": "r-1",
    "Accept": "application/json",
}


@pytest.mark.parametrize(("status", "method"), [(307, "POST"), (308, "PUT")])
async def test_307_308_across_origins_is_refused(
    status: int, method: str, client: EgressClient, origins: tuple[ServerThread, ServerThread]
) -> None:
    request = HttpRequest(method, bounce_url(origins, status), headers=CREDENTIALS, json={"secret": SECRET})
    with pytest.raises(HttpRequestRefused) as info:
        await redirected(client, origins, status, request)
    assert info.value.code == "host_not_allowed"
    assert "across origins" in info.value.message
    assert SECRET not in info.value.message
    assert RECORDER.seen == []  # the second origin received nothing


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_post_redirected_across_origins_goes_as_bare_get(
    status: int, client: EgressClient, origins: tuple[ServerThread, ServerThread]
) -> None:
    request = HttpRequest("POST", bounce_url(origins, status), headers=CREDENTIALS, json={"secret": SECRET})
    response = await redirected(client, origins, status, request)
    assert response.status == 200
    [seen] = RECORDER.seen
    assert seen["method"] == "GET"
    assert seen["body"] == b""
    for name in ("x-api-key", "x-shopify-access-token", "authorization", "x-request-id", "content-type"):
        assert name not in seen["headers"]
    assert SECRET not in json.dumps(seen["headers"])
    assert seen["headers"]["accept"] == "application/json"  # the safe list goes on


async def test_get_307_across_origins_drops_credential_headers(
    client: EgressClient, origins: tuple[ServerThread, ServerThread]
) -> None:
    request = HttpRequest("GET", bounce_url(origins, 307), headers=CREDENTIALS)
    await redirected(client, origins, 307, request)
    [seen] = RECORDER.seen
    assert seen["method"] == "GET"
    assert "x-api-key" not in seen["headers"]
    assert SECRET not in json.dumps(seen["headers"])


async def test_a_safe_header_holding_a_secret_is_dropped_too(
    client: EgressClient, origins: tuple[ServerThread, ServerThread]
) -> None:
    headers = {"User-Agent": f"shop-{SECRET}", "Accept-Language": "de"}
    request = HttpRequest("GET", bounce_url(origins, 302), headers=headers)
    await redirected(client, origins, 302, request, secrets=[SECRET])
    [seen] = RECORDER.seen
    assert SECRET not in seen["headers"].get("user-agent", "")
    assert seen["headers"]["accept-language"] == "de"
