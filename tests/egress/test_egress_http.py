"""End-to-end tests of :func:`bollard.platform.egress.send` against real servers.

A small Starlette app runs under uvicorn in a thread on 127.0.0.1 (plain HTTP, and
HTTPS with a certificate from a CA made here). Policies opt in to private egress and
name the server literally, as an operator testing against a local service would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from bollard.platform.egress import EgressClient, EgressPolicy, make_client, send
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HttpRequest, HttpResponse
from tests.support.standin import ServerThread, make_certificates

# ----------------------------------------------------------------- the server

SEEN: list[str] = []  # request paths with query, in arrival order


async def echo(request: Request) -> Response:
    SEEN.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k: v for k, v in request.headers.items()},
            "body": base64.b64encode(body).decode(),
            "client_port": request.client.port if request.client else None,
        }
    )


async def sized(request: Request) -> Response:
    return Response(b"x" * int(request.path_params["n"]), media_type="application/octet-stream")


async def streamed(request: Request) -> Response:
    n = int(request.path_params["n"])

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(n // 10):
            yield b"y" * 10

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def redirect(request: Request) -> Response:
    SEEN.append(request.url.path + "?" + request.url.query)
    status = int(request.query_params.get("status", "302"))
    return RedirectResponse(request.query_params["to"], status_code=status)


async def hops(request: Request) -> Response:
    n = int(request.path_params["n"])
    if n == 0:
        return JSONResponse({"done": True})
    return RedirectResponse(f"/hops/{n - 1}", status_code=302)


async def slow(request: Request) -> Response:
    await asyncio.sleep(1)
    return JSONResponse({"slow": True})


async def status(request: Request) -> Response:
    return JSONResponse({"error": "nope"}, status_code=int(request.path_params["code"]))


async def set_cookie(request: Request) -> Response:
    response = JSONResponse({"ok": True})
    response.set_cookie("session", "abc", domain=None)
    response.set_cookie("other", "def")
    return response


APP = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/bytes/{n:int}", sized),
        Route("/stream/{n:int}", streamed),
        Route("/redirect", redirect, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/hops/{n:int}", hops),
        Route("/slow", slow),
        Route("/status/{code:int}", status, methods=["GET", "POST", "DELETE"]),
        Route("/set-cookie", set_cookie),
    ]
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(APP) as running:
        yield running


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"))
    with ServerThread(APP, ssl_certfile=str(cert), ssl_keyfile=str(key)) as running:
        yield running, ca


@pytest.fixture
async def client() -> AsyncIterator[EgressClient]:
    egress_client = make_client()
    yield egress_client
    await egress_client.aclose()


def local_policy(server: ServerThread, *, hosts: tuple[str, ...] = ("127.0.0.1",)) -> EgressPolicy:
    return EgressPolicy([f"http://{h}:{server.port}" for h in hosts], allow_private=True)


async def call(
    client: EgressClient,
    policy: EgressPolicy,
    request: HttpRequest,
    *,
    max_response_bytes: int = 1_000_000,
    timeout_s: float = 10.0,
) -> HttpResponse:
    return await send(client, policy, request, max_response_bytes=max_response_bytes, timeout_s=timeout_s)


async def refusal(
    client: EgressClient, policy: EgressPolicy, request: HttpRequest, **limits: Any
) -> HttpRequestRefused:
    with pytest.raises(HttpRequestRefused) as info:
        await call(client, policy, request, **limits)
    return info.value


def echoed(response: HttpResponse) -> dict[str, Any]:
    assert response.status == 200
    data: dict[str, Any] = json.loads(response.body)
    data["body"] = base64.b64decode(data["body"])
    return data


# ----------------------------------------------------------------- requests


async def test_get_with_params(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo?a=1"
    response = await call(
        client, local_policy(server), HttpRequest("GET", url, params={"a": "2", "b": ["x", "y"]})
    )
    data = echoed(response)
    assert data["method"] == "GET"
    assert data["query"] == "a=1&a=2&b=x&b=y"
    assert data["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert data["headers"]["user-agent"] == "Bollard"
    assert response.status_text == "OK"
    assert response.headers["content-type"] == "application/json"
    assert response.url == f"http://127.0.0.1:{server.port}/echo?a=1&a=2&b=x&b=y"


async def test_post_json(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    payload = {"name": "café", "n": [1, 2.5, None, True]}
    data = echoed(await call(client, local_policy(server), HttpRequest("POST", url, json=payload)))
    assert data["method"] == "POST"
    assert json.loads(data["body"]) == payload
    assert data["headers"]["content-type"] == "application/json"


async def test_put_text_body_keeps_connector_content_type(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    request = HttpRequest("PUT", url, headers={"Content-Type": "application/xml"}, body="<a>ü</a>")
    data = echoed(await call(client, local_policy(server), request))
    assert data["body"] == "<a>ü</a>".encode()
    assert data["headers"]["content-type"] == "application/xml"
    assert data["headers"]["content-length"] == str(len("<a>ü</a>".encode()))


async def test_patch_binary_body(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    blob = bytes(range(256))
    data = echoed(await call(client, local_policy(server), HttpRequest("PATCH", url, binary_body=blob)))
    assert data["body"] == blob
    assert data["headers"]["content-type"] == "application/octet-stream"


async def test_non_ascii_header_values_are_sent_as_utf8(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    request = HttpRequest("GET", url, headers={"X-Name": "Zoë"})
    data = echoed(await call(client, local_policy(server), request))
    # Starlette decodes header bytes as latin-1.
    assert data["headers"]["x-name"].encode("latin-1").decode("utf-8") == "Zoë"


async def test_only_one_body_kind(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    request = HttpRequest("POST", url, json={"a": 1}, body="a")
    assert (await refusal(client, local_policy(server), request)).code == "connector_error"


async def test_non_2xx_is_returned(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/status/404"
    response = await call(client, local_policy(server), HttpRequest("DELETE", url))
    assert response.status == 404
    assert response.status_text == "Not Found"
    assert json.loads(response.body) == {"error": "nope"}


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "connection",
        "Transfer-Encoding",
        "Content-Length",
        "Proxy-Authorization",
        "Proxy-Connection",
        "X-Forwarded-For",
        "x-forwarded-host",
        "Forwarded",
        "Upgrade",
    ],
)
async def test_connection_headers_are_refused(name: str, server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo?forbidden-header={name}"
    request = HttpRequest("GET", url, headers={name: "secret-value-123"})
    error = await refusal(client, local_policy(server), request)
    assert error.code == "connector_error"
    assert name in error.message
    assert "secret-value-123" not in error.message
    assert f"/echo?forbidden-header={name}" not in SEEN


async def test_header_injection_is_refused(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    request = HttpRequest("GET", url, headers={"X-Token": "abc\r\nHost: evil.com"})
    error = await refusal(client, local_policy(server), request)
    assert error.code == "connector_error"
    assert "evil.com" not in error.message


async def test_cookies_are_not_kept_between_requests(server: ServerThread, client: EgressClient) -> None:
    base = f"http://127.0.0.1:{server.port}"
    response = await call(client, local_policy(server), HttpRequest("GET", base + "/set-cookie"))
    assert "session=abc" in response.headers["set-cookie"]
    assert "other=def" in response.headers["set-cookie"]
    data = echoed(await call(client, local_policy(server), HttpRequest("GET", base + "/echo")))
    assert "cookie" not in data["headers"]


# ----------------------------------------------------------------- limits


async def test_response_at_the_cap_is_returned(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/bytes/100"
    response = await call(client, local_policy(server), HttpRequest("GET", url), max_response_bytes=100)
    assert response.body == b"x" * 100


@pytest.mark.parametrize("path", ["/bytes/100", "/stream/100"])
async def test_response_over_the_cap_is_refused(
    path: str, server: ServerThread, client: EgressClient
) -> None:
    url = f"http://127.0.0.1:{server.port}{path}"
    error = await refusal(client, local_policy(server), HttpRequest("GET", url), max_response_bytes=99)
    assert error.code == "limit_exceeded"
    assert "larger than 99 bytes" in error.message


async def test_timeout(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/slow"
    error = await refusal(client, local_policy(server), HttpRequest("GET", url), timeout_s=0.1)
    assert error.code == "timeout"
    assert f"127.0.0.1:{server.port}" in error.message


async def test_connection_refused_is_a_network_error(client: EgressClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    policy = EgressPolicy([f"http://127.0.0.1:{port}"], allow_private=True)
    error = await refusal(client, policy, HttpRequest("GET", f"http://127.0.0.1:{port}/"))
    assert error.code == "network_error"
    assert f"127.0.0.1:{port}" in error.message


# ----------------------------------------------------------------- policy


async def test_private_address_refused_without_the_operator_setting(
    server: ServerThread, client: EgressClient
) -> None:
    url = f"http://127.0.0.1:{server.port}/echo?private-refused=1"
    policy = EgressPolicy([f"http://127.0.0.1:{server.port}"], allow_private=False)
    error = await refusal(client, policy, HttpRequest("GET", url))
    assert error.code == "host_not_allowed"
    assert "BOLLARD_ALLOW_PRIVATE_EGRESS" in error.message
    assert "/echo?private-refused=1" not in SEEN


async def test_host_not_listed_is_refused(server: ServerThread, client: EgressClient) -> None:
    url = f"http://localhost:{server.port}/echo?not-listed=1"
    error = await refusal(client, local_policy(server), HttpRequest("GET", url))
    assert error.code == "host_not_allowed"
    assert f'Add "http://localhost:{server.port}"' in error.message
    assert "/echo?not-listed=1" not in SEEN


async def test_the_client_dials_only_pinned_addresses(server: ServerThread, client: EgressClient) -> None:
    # Used directly, bypassing send(), the shared client's pool cannot reach anything.
    with pytest.raises(httpcore.ConnectError):
        await client.pool.request("GET", f"http://127.0.0.1:{server.port}/echo?direct=1")
    assert "/echo?direct=1" not in SEEN


async def test_send_requires_the_egress_client(server: ServerThread) -> None:
    url = f"http://127.0.0.1:{server.port}/echo"
    async with httpx.AsyncClient() as plain:
        with pytest.raises(TypeError):
            await call(plain, local_policy(server), HttpRequest("GET", url))


async def test_connections_are_reused_per_address_and_name(
    server: ServerThread, client: EgressClient
) -> None:
    policy = local_policy(server, hosts=("127.0.0.1", "localhost"))
    by_ip = f"http://127.0.0.1:{server.port}/echo"
    by_name = f"http://localhost:{server.port}/echo"
    first = echoed(await call(client, policy, HttpRequest("GET", by_ip)))
    second = echoed(await call(client, policy, HttpRequest("GET", by_ip)))
    other = echoed(await call(client, policy, HttpRequest("GET", by_name)))
    assert first["client_port"] == second["client_port"]
    assert other["client_port"] != first["client_port"]
    assert other["headers"]["host"] == f"localhost:{server.port}"


# ----------------------------------------------------------------- redirects


def redirect_url(server: ServerThread, to: str, status: int = 302, host: str = "127.0.0.1") -> str:
    return str(httpx.URL(f"http://{host}:{server.port}/redirect", params={"to": to, "status": str(status)}))


async def test_redirect_within_the_list(server: ServerThread, client: EgressClient) -> None:
    url = redirect_url(server, "/echo?after=redirect")
    response = await call(client, local_policy(server), HttpRequest("GET", url))
    assert echoed(response)["query"] == "after=redirect"
    assert response.url == f"http://127.0.0.1:{server.port}/echo?after=redirect"


async def test_redirect_off_the_list_is_refused(server: ServerThread, client: EgressClient) -> None:
    url = redirect_url(server, "https://evil.example/steal")
    error = await refusal(client, local_policy(server), HttpRequest("GET", url))
    assert error.code == "host_not_allowed"
    assert "Redirect from" in error.message
    assert "evil.example" in error.message


async def test_redirect_to_a_private_address_is_refused(server: ServerThread, client: EgressClient) -> None:
    # Each hop is resolved and checked: the target is listed through a domain entry,
    # which never opens private egress, and resolves to the metadata address.
    async def resolver(host: str, port: int) -> list[str]:
        return {"metadata.corp.test": ["169.254.169.254"]}[host]

    policy = EgressPolicy(
        [f"http://127.0.0.1:{server.port}", f"http://corp.test:{server.port}"],
        allow_private=True,
        resolver=resolver,
    )
    url = redirect_url(server, f"http://metadata.corp.test:{server.port}/latest/meta-data/")
    error = await refusal(client, policy, HttpRequest("GET", url))
    assert error.code == "host_not_allowed"
    assert error.message.startswith("Redirect refused:")
    assert "metadata.corp.test resolves to 169.254.169.254" in error.message


async def test_five_redirects_are_followed(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/hops/5"
    response = await call(client, local_policy(server), HttpRequest("GET", url))
    assert json.loads(response.body) == {"done": True}
    assert response.url == f"http://127.0.0.1:{server.port}/hops/0"


async def test_a_sixth_redirect_is_refused(server: ServerThread, client: EgressClient) -> None:
    url = f"http://127.0.0.1:{server.port}/hops/6"
    error = await refusal(client, local_policy(server), HttpRequest("GET", url))
    assert error.code == "limit_exceeded"
    assert "5 redirects" in error.message


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_post_redirected_as_get_without_body(
    status: int, server: ServerThread, client: EgressClient
) -> None:
    url = redirect_url(server, "/echo", status)
    request = HttpRequest("POST", url, json={"a": 1})
    data = echoed(await call(client, local_policy(server), request))
    assert data["method"] == "GET"
    assert data["body"] == b""
    assert "content-type" not in data["headers"]


@pytest.mark.parametrize("status", [307, 308])
async def test_307_308_keep_method_and_body(status: int, server: ServerThread, client: EgressClient) -> None:
    url = redirect_url(server, "/echo", status)
    request = HttpRequest("POST", url, json={"a": 1})
    data = echoed(await call(client, local_policy(server), request))
    assert data["method"] == "POST"
    assert json.loads(data["body"]) == {"a": 1}


async def test_credentials_kept_on_the_same_origin(server: ServerThread, client: EgressClient) -> None:
    url = redirect_url(server, "/echo")
    request = HttpRequest("GET", url, headers={"Authorization": "Bearer t0k", "Cookie": "s=1"})
    data = echoed(await call(client, local_policy(server), request))
    assert data["headers"]["authorization"] == "Bearer t0k"
    assert data["headers"]["cookie"] == "s=1"


async def test_credentials_dropped_when_the_host_changes(server: ServerThread, client: EgressClient) -> None:
    policy = local_policy(server, hosts=("127.0.0.1", "localhost"))
    url = redirect_url(server, f"http://localhost:{server.port}/echo")
    headers = {"Authorization": "Bearer t0k", "Cookie": "s=1", "X-Trace": "t1", "Accept-Language": "de"}
    data = echoed(await call(client, policy, HttpRequest("GET", url, headers=headers)))
    assert data["headers"]["host"] == f"localhost:{server.port}"
    assert "authorization" not in data["headers"]
    assert "cookie" not in data["headers"]
    # Only the safe list crosses origins (DESIGN §4): a custom header stays behind.
    assert "x-trace" not in data["headers"]
    assert data["headers"]["accept-language"] == "de"


# ----------------------------------------------------------------- TLS


def trusting(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def test_tls_is_verified_for_the_name_not_the_pinned_address(
    tls_server: tuple[ServerThread, Path],
) -> None:
    server, ca = tls_server
    policy = EgressPolicy([f"https://localhost:{server.port}"], allow_private=True)
    tls_client = make_client(ssl_context=trusting(ca))
    try:
        response = await call(tls_client, policy, HttpRequest("GET", f"https://localhost:{server.port}/echo"))
    finally:
        await tls_client.aclose()
    assert echoed(response)["headers"]["host"] == f"localhost:{server.port}"


async def test_tls_certificate_for_another_name_is_refused(
    tls_server: tuple[ServerThread, Path],
) -> None:
    # The certificate names localhost only; asking for 127.0.0.1 must fail the check.
    server, ca = tls_server
    policy = EgressPolicy([f"https://127.0.0.1:{server.port}"], allow_private=True)
    tls_client = make_client(ssl_context=trusting(ca))
    try:
        error = await refusal(tls_client, policy, HttpRequest("GET", f"https://127.0.0.1:{server.port}/echo"))
    finally:
        await tls_client.aclose()
    assert error.code == "network_error"
    assert "TLS certificate" in error.message
    assert "mismatch" in error.message


async def test_tls_certificate_from_an_unknown_ca_is_refused(
    tls_server: tuple[ServerThread, Path], client: EgressClient
) -> None:
    server, _ = tls_server
    policy = EgressPolicy([f"https://localhost:{server.port}"], allow_private=True)
    error = await refusal(client, policy, HttpRequest("GET", f"https://localhost:{server.port}/echo"))
    assert error.code == "network_error"
    assert "certificate" in error.message
