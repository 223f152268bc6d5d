"""Local HTTPS stand-ins for the APIs Tale's 12 example connectors call (tests/tale/).

One Starlette app answers for every upstream name (``api.github.com``, ``slack.com``,
``graph.microsoft.com``, …), dispatching on the ``Host`` header; the operator's resolve
override (``BOLLARD_EGRESS_RESOLVE``) sends each name to it, and its certificate (from
:func:`~tests.support.standin.make_certificates`) names them all. Each answer has the
shape the connector's own parsing reads (field names taken from ``connector.ts``).
Every request is recorded (:class:`Seen`) so tests can assert what the connector sent:
the credential header, a multipart body, the query.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SHOP = "bollard-test.myshopify.com"
TWILIO_SID = "AC0123456789abcdef"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))  # a tiny "image"
PDF = b"%PDF-1.4 bollard test attachment\n"
DRIVE_FILE = b"quarterly numbers, as a Drive file\n"

# Every name a connector reaches; the certificate and the resolve override cover these.
HOSTS = (
    "api.tavily.com",
    "api.circuly.io",
    "discord.com",
    "api.github.com",
    "gmail.googleapis.com",
    "www.googleapis.com",
    "graph.microsoft.com",
    SHOP,
    "slack.com",
    "api.twilio.com",
    "api.openai.com",
)
# allowedHosts entries no connector call reaches but Test connection's hosts step
# resolves (circuly.io covers api.circuly.io, myshopify.com the shop, ai-image allows
# api.together.xyz too): the override answers for them as well, so no DNS query leaves.
RESOLVED_ONLY = ("circuly.io", "myshopify.com", "api.together.xyz")


@dataclass
class Hit:
    """One request a stand-in received."""

    host: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    form: list[dict[str, Any]] = field(default_factory=list)  # parsed multipart parts

    def json(self) -> Any:
        return json.loads(self.body)


class Seen(list[Hit]):
    """The requests received, in order; :meth:`to` filters by host and path prefix."""

    def to(self, host: str, path: str = "") -> list[Hit]:
        return [h for h in self if h.host == host and h.path.startswith(path)]


Handler = Callable[[Request, Hit], Awaitable[Response] | Response]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(value, status_code=status, headers=headers)


def _need(hit: Hit, header: str, prefix: str) -> Response | None:
    """401 unless the request carries ``header`` starting with ``prefix`` (the connector
    sent its credential)."""
    if not hit.headers.get(header.lower(), "").startswith(prefix):
        return _json({"error": "missing credential"}, 401)
    return None


# --- one function per upstream: (method, path) -> answer --------------------------------


def tavily(method: str, path: str, hit: Hit) -> Response | None:
    if (method, path) == ("POST", "/search"):
        payload = hit.json()
        if payload.get("api_key") != "tvly-test":
            return _json({"detail": "invalid api key"}, 401)
        results = [
            {
                "title": "Bollard",
                "url": "https://example.org/b",
                "content": "A sandboxed host.",
                "score": 0.9,
            },
            {"title": "Tale", "url": "https://example.org/t", "content": "Integrations.", "score": 0.5},
        ]
        return _json(
            {"query": payload["query"], "results": results[: payload["max_results"]], "response_time": 0.1}
        )
    return None


def circuly(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Basic " + base64.b64encode(b"circ-user:circ-pass").decode())
    if denied:
        return denied
    if method == "GET" and path == "/api/2025-01/customers":
        return _json(
            {"data": [{"id": 1, "email": "a@example.org"}], "meta": {"current_page": 1, "last_page": 1}}
        )
    if method == "GET" and path == "/api/2025-01/products":
        products = [{"id": 10, "name": "Bike"}, {"id": 11, "name": "Scooter"}]
        return _json(
            {
                "data": products,
                "meta": {"current_page": 1, "last_page": 3, "per_page": 2, "total": 6},
                "filterable": ["status"],
            }
        )
    return None


def discord(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Bot discord-token")
    if denied:
        return denied
    if (method, path) == ("GET", "/api/v10/users/@me"):
        return _json({"id": "1", "username": "bollard-bot", "discriminator": "0001"})
    if (method, path) == ("GET", "/api/v10/users/@me/guilds"):
        return _json([{"id": "g1", "name": "Guild One"}, {"id": "g2", "name": "Guild Two"}])
    if method == "POST" and path == "/api/v10/channels/c42/messages":
        return _json({"id": "m1", "channel_id": "c42", "content": hit.json()["content"]})
    return None


def github(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Bearer ghp_test")
    if denied:
        return denied
    if (method, path) == ("GET", "/user"):
        return _json({"login": "octo-bollard"})
    if (method, path) == ("GET", "/user/repos"):
        link = '<https://api.github.com/user/repos?page=2>; rel="next"'
        return _json(
            [{"id": 1, "full_name": "octo/one"}, {"id": 2, "full_name": "octo/two"}], headers={"Link": link}
        )
    return None


GMAIL = "/gmail/v1/users/me"


def gmail(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Bearer google-token")
    if denied:
        return denied
    if (method, path) == ("GET", GMAIL + "/profile"):
        return _json({"emailAddress": "me@example.org", "messagesTotal": 42})
    if (method, path) == ("GET", GMAIL + "/labels"):
        return _json({"labels": [{"id": "INBOX", "name": "INBOX"}, {"id": "L1", "name": "Receipts"}]})
    if (method, path) == ("GET", GMAIL + "/messages/msg1"):
        part = {
            "partId": "1",
            "mimeType": "application/pdf",
            "filename": "invoice.pdf",
            "headers": [{"name": "Content-ID", "value": "<inv1>"}],
            "body": {"attachmentId": "att1", "size": len(PDF)},
        }
        return _json(
            {
                "id": "msg1",
                "payload": {"mimeType": "multipart/mixed", "parts": [{"mimeType": "text/plain"}, part]},
            }
        )
    if (method, path) == ("GET", GMAIL + "/messages/msg1/attachments/att1"):
        return _json({"attachmentId": "att1", "size": len(PDF), "data": _b64url(PDF)})
    return None


def google(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Bearer google-token")
    if denied:
        return denied
    if (method, path) == ("GET", "/drive/v3/about"):
        return _json({"user": {"emailAddress": "me@example.org"}})
    if (method, path) == ("GET", "/drive/v3/files"):
        files = [{"id": "f1", "name": "numbers.csv", "size": str(len(DRIVE_FILE)), "mimeType": "text/csv"}]
        return _json({"files": files, "nextPageToken": "next-1"})
    if (method, path) == ("GET", "/drive/v3/files/f1") and "alt=media" in hit.query:
        return Response(DRIVE_FILE, media_type="text/csv")
    return None


GRAPH = "/v1.0"


def graph(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Bearer ms-token")
    if denied:
        return denied
    if (method, path) == ("GET", GRAPH + "/me"):
        return _json({"displayName": "Bollard Tester", "mail": "tester@example.org"})
    if (method, path) == ("GET", GRAPH + "/me/joinedTeams"):
        return _json({"value": [{"id": "t1", "displayName": "Team One"}]})
    if (method, path) == ("GET", GRAPH + "/me/messages/om1/attachments"):
        inline = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": "oa1",
            "name": "report.pdf",
            "contentType": "application/pdf",
            "size": len(PDF),
            "contentBytes": base64.b64encode(PDF).decode(),
        }
        large = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "id": "oa2",
            "name": "photo.png",
            "contentType": "image/png",
            "size": len(PNG),
        }
        item = {"@odata.type": "#microsoft.graph.itemAttachment", "id": "oa3", "name": "meeting"}
        return _json({"value": [inline, large, item]})
    if (method, path) == ("GET", GRAPH + "/me/messages/om1/attachments/oa2/$value"):
        return Response(PNG, media_type="image/png")
    return None


def shopify(method: str, path: str, hit: Hit) -> Response | None:
    if hit.headers.get("x-shopify-access-token") != "shpat_test":
        return _json({"errors": "[API] Invalid API key or access token"}, 401)
    if (method, path) == ("GET", "/admin/api/2026-01/shop.json"):
        return _json({"shop": {"name": "Bollard Test Shop"}})
    if (method, path) == ("GET", "/admin/api/2026-01/products.json"):
        link = f'<https://{SHOP}/admin/api/2026-01/products.json?page_info=abc123&limit=50>; rel="next"'
        return _json({"products": [{"id": 7, "title": "Mug"}]}, headers={"Link": link})
    return None


def slack(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(hit, "authorization", "Bearer xoxb-test")
    if denied:
        return _json({"ok": False, "error": "not_authed"})
    if (method, path) == ("POST", "/api/auth.test"):
        return _json({"ok": True, "team": "Bollard", "user": "bot", "team_id": "T1", "user_id": "U1"})
    if (method, path) == ("POST", "/api/conversations.list"):
        channels = [{"id": "C1", "name": "general"}, {"id": "C2", "name": "random"}]
        return _json({"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})
    return None


def twilio(method: str, path: str, hit: Hit) -> Response | None:
    denied = _need(
        hit, "authorization", "Basic " + base64.b64encode(f"{TWILIO_SID}:twilio-secret".encode()).decode()
    )
    if denied:
        return denied
    if (method, path) == ("GET", f"/2010-04-01/Accounts/{TWILIO_SID}.json"):
        return _json({"sid": TWILIO_SID, "friendly_name": "Bollard account"})
    if (method, path) == ("GET", f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"):
        return _json({"messages": [{"sid": "SM1", "body": "hello"}], "next_page_uri": None})
    return None


def openai(method: str, path: str, hit: Hit) -> Response | None:
    if (method, path) == ("GET", "/fixtures/source.png"):  # the image an edit starts from
        return Response(PNG, media_type="image/png")
    denied = _need(hit, "authorization", "Bearer sk-test")
    if denied:
        return denied
    if (method, path) == ("GET", "/v1/models"):
        return _json({"data": [{"id": "gpt-image-1"}]})
    if (method, path) == ("POST", "/v1/images/generations"):
        return _json({"data": [{"b64_json": base64.b64encode(PNG).decode()}]})
    if (method, path) == ("POST", "/v1/images/edits"):
        if not hit.headers.get("content-type", "").startswith("multipart/form-data; boundary="):
            return _json({"error": {"message": "expected multipart/form-data"}}, 400)
        return _json({"data": [{"b64_json": base64.b64encode(PNG[::-1]).decode()}]})
    return None


UPSTREAMS: dict[str, Callable[[str, str, Hit], Response | None]] = {
    "api.tavily.com": tavily,
    "api.circuly.io": circuly,
    "discord.com": discord,
    "api.github.com": github,
    "gmail.googleapis.com": gmail,
    "www.googleapis.com": google,
    "graph.microsoft.com": graph,
    SHOP: shopify,
    "slack.com": slack,
    "api.twilio.com": twilio,
    "api.openai.com": openai,
}


async def _form(request: Request) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                parts.append(
                    {
                        "name": name,
                        "fileName": value.filename,
                        "contentType": value.content_type,
                        "data": data,
                    }
                )
            else:
                parts.append({"name": name, "value": value})
    return parts


def make_app(seen: Seen) -> Starlette:
    """The stand-in app; every request is appended to ``seen``."""

    async def dispatch(request: Request) -> Response:
        host = request.headers.get("host", "").split(":")[0]
        body = await request.body()
        hit = Hit(host, request.method, request.url.path, request.url.query, dict(request.headers), body)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            hit.form = await _form(request)
        seen.append(hit)
        upstream = UPSTREAMS.get(host)
        answer = upstream(request.method, request.url.path, hit) if upstream else None
        return (
            answer
            if answer is not None
            else _json({"error": f"no stand-in for {request.method} {host}{hit.path}"}, 404)
        )

    return Starlette(
        routes=[Route("/{path:path}", dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
    )
