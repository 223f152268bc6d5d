"""An OAuth2 authorization server stand-in (DESIGN §7) built from authlib's server
components: ``AuthorizationServer``, the authorization-code grant with the RFC 7636
``CodeChallenge`` extension (PKCE required), the refresh-token grant with rotation
(RFC 6749 §6), RFC 7009 revocation.

:func:`provider_app` is a Starlette app with ``/authorize`` (approves at once for
:data:`USER`; ``decision=deny`` plays the user clicking Deny), ``/token``, ``/revoke`` and
the protected resource ``/api/me``. It checks the client secret and the PKCE verifier,
issues access tokens of :attr:`Provider.lifetime_s` seconds, rotates refresh tokens and
revokes old ones. :func:`serve_provider` runs it under uvicorn on 127.0.0.1: over HTTPS
(a test CA) for the OAuth endpoints and over plain HTTP for the resource.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request, grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.api import BASE_URL
from tests.support.standin import ServerThread

PUBLIC_URL = BASE_URL  # Bollard's public URL: the ASGI test client's base URL
CALLBACK = PUBLIC_URL + "/api/integrations/oauth2/callback"
CLIENT_ID = "bollard-client"
CLIENT_SECRET = "client-secret-" + generate_token(24)
USER = "alice"
SCOPES = ["read", "profile"]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return CALLBACK

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == CALLBACK

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    user: str = USER

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    serial: int
    client_id: str
    access_token: str
    refresh_token: str | None
    scope: str
    expires_in: int
    issued_at: float
    user: str = USER
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Client:
        return PROVIDER_CLIENT


PROVIDER_CLIENT = Client(CLIENT_ID, CLIENT_SECRET)


@dataclass
class Provider:
    """The authorization server's state, shared between its thread and the test."""

    lifetime_s: int = 3600  # expires_in of the next tokens issued
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)  # grant, auth, status, error
    verifiers: list[str] = field(default_factory=list)  # PKCE verifiers received
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refreshes(self) -> int:
        return sum(1 for r in self.token_requests if r["grant"] == "refresh_token" and r["status"] == 200)

    def token(self, value: str) -> Token | None:
        return next((t for t in self.tokens if value in (t.access_token, t.refresh_token)), None)

    def secrets(self) -> list[str]:
        """Everything that must never leave Bollard: tokens, verifiers, the client secret."""
        pair = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        values = [CLIENT_SECRET, pair, *self.verifiers]
        for t in self.tokens:
            values += [t.access_token] + ([t.refresh_token] if t.refresh_token else [])
        return values


class StarletteRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's request shape over values already read from a Starlette request."""

    def __init__(self, request: Request, form: dict[str, str]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = form
        self.payload = BasicOAuth2Payload({**self._args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, request: StarletteRequest) -> None:
        data = request.payload.data
        self.server.provider.codes[code] = Code(
            code,
            request.client.client_id,
            data["redirect_uri"],
            request.scope or "",
            data.get("code_challenge"),
            data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        found: Code | None = self.server.provider.codes.get(code)
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, code: Code) -> None:
        self.server.provider.codes.pop(code.code, None)

    def authenticate_user(self, code: Code) -> str:
        return code.user


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh issues a new refresh token

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = self.server.provider.token(refresh_token)
        if token is None or token.revoked or token.refresh_token != refresh_token:
            return None
        return token

    def authenticate_user(self, token: Token) -> str:
        return token.user

    def revoke_old_credential(self, token: Token) -> None:
        token.revoked = True  # the old access token and refresh token stop working


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return self.server.provider.token(token_string)

    def revoke_token(self, token: Token, request: StarletteRequest) -> None:
        token.revoked = True


class Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=SCOPES)
        self.provider = provider
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **kw: generate_token(40),
                lambda **kw: generate_token(48),
                lambda client, grant_type: provider.lifetime_s,
            ),
        )
        self.register_grant(CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> Client | None:
        return PROVIDER_CLIENT if client_id == CLIENT_ID else None

    def save_token(self, token: dict[str, Any], request: StarletteRequest) -> None:
        p = self.provider
        p.tokens.append(
            Token(
                len(p.tokens) + 1,
                request.client.client_id,
                token["access_token"],
                token.get("refresh_token"),
                token.get("scope", ""),
                token["expires_in"],
                time.time(),
            )
        )

    def create_oauth2_request(self, request: StarletteRequest) -> StarletteRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body or b"", status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


def provider_app(provider: Provider) -> Starlette:
    server = Server(provider)

    async def authorize(request: Request) -> Response:
        """Auto-approves for USER; ``decision=deny`` plays the user clicking Deny."""
        provider.authorize_requests.append(dict(request.query_params))
        oauth_request = StarletteRequest(request, {})
        with provider.lock:
            try:
                grant = server.get_consent_grant(oauth_request, end_user=USER)
            except OAuth2Error as e:
                return JSONResponse({"error": e.error, "error_description": e.description}, status_code=400)
            user = None if request.query_params.get("decision") == "deny" else USER
            response: Response = server.create_authorization_response(
                oauth_request, grant_user=user, grant=grant
            )
            return response

    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if "code_verifier" in form:
            provider.verifiers.append(form["code_verifier"])
        with provider.lock:
            response: Response = server.create_token_response(StarletteRequest(request, form))
        error = None if response.status_code == 200 else response.body.decode()
        auth = "basic" if request.headers.get("authorization", "").startswith("Basic ") else "post"
        provider.token_requests.append(
            {"grant": form.get("grant_type"), "auth": auth, "status": response.status_code, "error": error}
        )
        return response

    async def revoke(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        with provider.lock:
            response: Response = server.create_endpoint_response(
                "revocation", StarletteRequest(request, form)
            )
        return response

    async def me(request: Request) -> Response:
        """The protected resource: a valid, unexpired, unrevoked bearer token only."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = provider.token(value) if scheme == "Bearer" else None
        if token is None or token.access_token != value or token.revoked or token.is_expired():
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"user": token.user, "scope": token.scope, "tokenSerial": token.serial})

    return Starlette(
        routes=[
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/revoke", revoke, methods=["POST"]),
            Route("/api/me", me),
        ]
    )


@dataclass
class Running:
    provider: Provider
    oauth_url: str  # https://localhost:<port> (authorize, token, revoke)
    resource_url: str  # http://127.0.0.1:<port> (the protected resource)
    ca: Path


@contextmanager
def serve_provider(certificates: tuple[Path, Path, Path]) -> Iterator[Running]:
    """A fresh :class:`Provider` served over HTTPS (``certificates``: the
    ``(ca, cert, key)`` of :func:`~tests.support.standin.make_certificates`) and HTTP."""
    ca, cert, key = certificates
    provider = Provider()
    app = provider_app(provider)
    with ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as tls, ServerThread(app) as plain:
        yield Running(provider, f"https://localhost:{tls.port}", plain.url, ca)
