"""The operator's resolve override (``BOLLARD_EGRESS_RESOLVE``, DESIGN §4) and
multipart ``formFields`` bodies, against a real HTTPS server on 127.0.0.1.

The override changes only where a name's requests go: the name is still checked
against ``allowedHosts``, TLS is verified for the name, and loopback is reachable
through an overridden name only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bollard.platform.egress import EgressClient, EgressPolicy, ResolveOverride, make_client, send
from bollard.platform.egress.sender import default_ssl_context
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import FormField, HttpRequest, HttpResponse
from tests.support.standin import ServerThread, make_certificates

NAME = "api.tavily.com"  # never resolved: the override answers for it


async def whoami(request: Request) -> Response:
    return JSONResponse({"host": request.headers.get("host"), "path": request.url.path})


async def form(request: Request) -> Response:
    out: list[dict[str, Any]] = []
    async with request.form() as parsed:
        items = [(n, v) for n, v in parsed.multi_items()]
        for name, value in items:
            if isinstance(value, UploadFile):
                data = await value.read()
                out.append(
                    {
                        "name": name,
                        "file_name": value.filename,
                        "content_type": value.content_type,
                        "data": base64.b64encode(data).decode(),
                    }
                )
            else:
                out.append({"name": name, "value": value})
    return JSONResponse({"content_type": request.headers["content-type"], "parts": out})


APP = Starlette(routes=[Route("/whoami", whoami), Route("/form", form, methods=["POST"])])


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"), (NAME,))
    with ServerThread(APP, ssl_certfile=str(cert), ssl_keyfile=str(key)) as running:
        yield running, ca


@pytest.fixture
async def client(tls: tuple[ServerThread, Path]) -> AsyncIterator[EgressClient]:
    egress_client = make_client(ssl_context=default_ssl_context(str(tls[1])))
    yield egress_client
    await egress_client.aclose()


def override_to(server: ServerThread, name: str = NAME) -> ResolveOverride:
    return ResolveOverride.parse(f"{name}:443=127.0.0.1:{server.port}")


async def get(client: EgressClient, policy: EgressPolicy, url: str) -> HttpResponse:
    return await send(client, policy, HttpRequest("GET", url), max_response_bytes=100_000, timeout_s=10)


async def test_an_overridden_name_reaches_the_stand_in_with_tls_for_the_name(
    tls: tuple[ServerThread, Path], client: EgressClient
) -> None:
    policy = EgressPolicy([NAME], override=override_to(tls[0]))
    response = await get(client, policy, f"https://{NAME}/whoami")
    assert response.status == 200
    assert response.body == b'{"host":"api.tavily.com","path":"/whoami"}'


async def test_the_name_is_still_checked_against_allowed_hosts(
    tls: tuple[ServerThread, Path], client: EgressClient
) -> None:
    policy = EgressPolicy(["api.github.com"], override=override_to(tls[0]))
    with pytest.raises(HttpRequestRefused) as info:
        await get(client, policy, f"https://{NAME}/whoami")
    assert info.value.code == "host_not_allowed"
    assert "not in allowedHosts" in info.value.message


async def test_tls_is_verified_for_the_name_not_the_address(
    tls: tuple[ServerThread, Path], client: EgressClient
) -> None:
    # The stand-in's certificate is for api.tavily.com only: another name pointed at it fails.
    other = "api.github.com"
    policy = EgressPolicy([other], override=override_to(tls[0], other))
    with pytest.raises(HttpRequestRefused) as info:
        await get(client, policy, f"https://{other}/whoami")
    assert info.value.code == "network_error"
    assert "certificate" in info.value.message


async def test_without_the_extra_ca_bundle_the_stand_in_is_not_trusted(
    tls: tuple[ServerThread, Path],
) -> None:
    async with make_client() as plain:
        with pytest.raises(HttpRequestRefused) as info:
            await get(plain, EgressPolicy([NAME], override=override_to(tls[0])), f"https://{NAME}/whoami")
    assert "certificate" in info.value.message


async def test_loopback_is_allowed_only_for_overridden_names(tls: tuple[ServerThread, Path]) -> None:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    # A name that DNS points at loopback is refused, even with an override for another name.
    policy = EgressPolicy(["evil.example.com", NAME], resolver=to_loopback, override=override_to(tls[0]))
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize("https://evil.example.com/")
    assert info.value.code == "host_not_allowed" and "loopback" in info.value.message
    destination = await policy.authorize(f"https://{NAME}/x")
    assert destination.addresses == (ip_address("127.0.0.1"),)
    assert destination.dial_port == tls[0].port
    # The override is per port too: the same name on another port is not overridden.
    policy8443 = EgressPolicy([f"https://{NAME}:8443"], resolver=to_loopback, override=override_to(tls[0]))
    with pytest.raises(HttpRequestRefused):
        await policy8443.authorize(f"https://{NAME}:8443/")


@pytest.mark.parametrize(
    ("target", "label"),
    [("10.0.0.7", "private"), ("0.0.0.0", "never a valid destination"), ("169.254.169.254", "link-local")],
)
async def test_an_override_to_a_non_loopback_local_address_follows_the_usual_rules(
    target: str, label: str
) -> None:
    policy = EgressPolicy([NAME], override=ResolveOverride.parse(f"{NAME}:443={target}:443"))
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize(f"https://{NAME}/")
    assert info.value.code == "host_not_allowed"
    assert label in info.value.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("api.tavily.com=127.0.0.1:1", "must be host:port"),
        ("api.tavily.com:443", "like curl --resolve"),
        ("api.tavily.com:443=localhost:1", "is not an IP address"),
        ("127.0.0.1:443=127.0.0.1:1", "must be a host name"),
        ("api.tavily.com:0=127.0.0.1:1", "is not a port"),
        ("api.tavily.com:443=127.0.0.1:99999", "is not a port"),
    ],
)
def test_bad_override_entries_are_refused_by_name(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ResolveOverride.parse(text)


def test_override_parsing_normalises_names_and_reads_ipv6() -> None:
    parsed = ResolveOverride.parse(" API.Tavily.com.:443=127.0.0.1:8443 , x.example:80=[::1]:8080,")
    assert parsed.lookup("api.tavily.com", 443) == (ip_address("127.0.0.1"), 8443)
    assert parsed.describe() == ["api.tavily.com:443 -> 127.0.0.1:8443", "x.example:80 -> [::1]:8080"]
    assert not ResolveOverride.parse("")


# ----------------------------------------------------------------- multipart formFields


async def post_form(
    client: EgressClient, server: ServerThread, fields: tuple[FormField, ...], **kw: Any
) -> Any:
    policy = EgressPolicy([NAME], override=override_to(server))
    request = HttpRequest("POST", f"https://{NAME}/form", form_fields=fields, **kw)
    response = await send(client, policy, request, max_response_bytes=100_000, timeout_s=10)
    assert response.status == 200, response.body
    return json.loads(response.body)


async def test_form_fields_are_sent_as_multipart(
    tls: tuple[ServerThread, Path], client: EgressClient
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    answer = await post_form(
        client,
        tls[0],
        (
            FormField("model", "gpt-image-1"),
            FormField("prompt", "ünïcode prompt"),
            FormField("image", base64.b64encode(png).decode(), "image.png", "image/png", True),
        ),
        headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
    )
    assert answer["content_type"].startswith("multipart/form-data; boundary=")
    assert answer["parts"] == [
        {"name": "model", "value": "gpt-image-1"},
        {"name": "prompt", "value": "ünïcode prompt"},
        {
            "name": "image",
            "file_name": "image.png",
            "content_type": "image/png",
            "data": base64.b64encode(png).decode(),
        },
    ]


async def test_quotes_and_line_breaks_in_part_names_stay_inside_their_header(
    tls: tuple[ServerThread, Path], client: EgressClient
) -> None:
    answer = await post_form(
        client,
        tls[0],
        (FormField('a"\r\nX-Injected: 1', "v", 'x"\r\nContent-Type: text/html\r\n\r\n.png', "image/png"),),
    )
    (part,) = answer["parts"]
    assert part["content_type"] == "image/png"  # no injected header took effect
    assert "\r" not in part["file_name"] and "\n" not in part["file_name"]


@pytest.mark.parametrize("content_type", ["image/png\r\nX-Injected: 1", "not a type", "text/html\x00"])
async def test_a_content_type_that_is_not_a_media_type_is_refused(
    tls: tuple[ServerThread, Path], client: EgressClient, content_type: str
) -> None:
    with pytest.raises(HttpRequestRefused) as info:
        await post_form(client, tls[0], (FormField("f", "v", "f.txt", content_type),))
    assert info.value.code == "connector_error"
    assert "formFields[0].contentType is not a media type" in info.value.message


async def test_invalid_base64_in_a_form_field_is_refused(
    tls: tuple[ServerThread, Path], client: EgressClient
) -> None:
    with pytest.raises(HttpRequestRefused) as info:
        await post_form(client, tls[0], (FormField("f", "!!", is_base64=True),))
    assert "formFields[0].value is not valid base64" in info.value.message
