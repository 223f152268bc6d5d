"""OAuth2 end to end (DESIGN §7): authorization code + PKCE, callback, refresh, revocation.

A real OAuth2 authorization server built from authlib's server components
(:mod:`tests.support.oauth2_provider`) runs under uvicorn on 127.0.0.1: over HTTPS with a
test CA for its OAuth endpoints (Bollard trusts the CA through ``oauth2_ca_bundle``), and
the same app over plain HTTP for the protected resource the connector calls. It checks
the client secret and the PKCE verifier, issues access tokens whose lifetime the test
chooses, rotates refresh tokens and revokes old ones.

The test plays the browser: it asks Bollard for the authorization URL, calls the
provider's authorization endpoint (which approves at once, or denies when told to), and
follows the redirect to Bollard's callback. Expiry is reached by issuing tokens that
expire within Bollard's refresh margin, or by moving Bollard's OAuth2 clock; nothing
sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token

from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration
from tests.support.oauth2_provider import (
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    PUBLIC_URL,
    SCOPES,
    USER,
    Running,
    serve_provider,
)
from tests.support.standin import make_certificates

SLUG = "provider"

# ----------------------------------------------------------------- fixtures

CONNECTOR = """
BASE = "{resource}"


def me(ctx):
    token = ctx.secrets.get("accessToken")
    r = ctx.http.get(BASE + "/api/me", headers={{"Authorization": "Bearer " + token}})
    if r.status == 401:
        raise Exception("the provider rejected the access token")
    return r.json()


def test_connection(ctx):
    me(ctx)
    return {{"status": "ok"}}


def execute(ctx):
    if ctx.operation == "whoami":
        return me(ctx)
    raise Exception("Unknown operation: " + ctx.operation)
"""


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("oauth2-tls"))


@pytest.fixture
def running(certificates: tuple[Path, Path, Path]) -> Iterator[Running]:
    with serve_provider(certificates) as r:
        yield r


def settings(running: Running, integrations_dir: Path, data_dir: Path) -> Any:
    """Private egress allowed, the test CA trusted for token endpoints, the ASGI client's
    base URL as the public URL."""
    from bollard.platform.settings import Settings

    return Settings(
        integrations_dir=integrations_dir,
        data_dir=data_dir,
        secret_key="test-secret-key",
        reload=False,
        allow_private_egress=True,
        oauth2_ca_bundle=running.ca,
        public_url=PUBLIC_URL,
    )


@pytest.fixture
async def runtime(running: Running, integrations_dir: Path, data_dir: Path) -> AsyncIterator[Runtime]:
    """Overrides conftest's runtime with :func:`settings` and the provider integration."""
    write_integration(
        integrations_dir,
        SLUG,
        rest_manifest(
            title="Provider",
            authMethod="oauth2",
            secretBindings=["accessToken"],
            allowedHosts=[running.resource_url],
            oauth2Config={
                "authorizationUrl": running.oauth_url + "/authorize",
                "tokenUrl": running.oauth_url + "/token",
                "scopes": SCOPES,
            },
            operations=[
                {
                    "name": "whoami",
                    "operationType": "read",
                    "parametersSchema": {"type": "object", "properties": {}},
                }
            ],
        ),
        connector=CONNECTOR.format(resource=running.resource_url),
    )
    write_integration(
        integrations_dir, "plain", rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    )
    async with Runtime(settings(running, integrations_dir, data_dir)) as rt:
        yield rt


@pytest.fixture
async def browser(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser, talking to the provider (it trusts the test CA)."""
    context = ssl.create_default_context(cafile=str(running.ca))
    async with httpx.AsyncClient(verify=context, trust_env=False) as client:
        yield client


@pytest.fixture
async def client_registered(api: Api) -> None:
    r = await api.put(
        f"/api/integrations/{SLUG}/credentials",
        json={"values": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}},
    )
    assert r.status_code == 200, r.text


# ----------------------------------------------------------------- helpers


async def authorize_url(api: Api, credential_id: str | None = None) -> str:
    params = {"format": "json", **({"credentialId": credential_id} if credential_id else {})}
    r = await api.get(f"/api/integrations/{SLUG}/oauth2/authorize", params=params)
    assert r.status_code == 200, r.text
    url: str = r.json()["authorizeUrl"]
    return url


async def provider_redirect(browser: httpx.AsyncClient, url: str, *, deny: bool = False) -> str:
    """Open the provider's authorization page; return where it sends the browser back."""
    r = await browser.get(url + ("&decision=deny" if deny else ""))
    assert r.status_code == 302, r.text
    location: str = r.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return location


async def callback(api: Api, location: str, *, accept: str = "application/json") -> httpx.Response:
    """Follow the provider's redirect to Bollard's callback, as a browser would: no token."""
    return await api.client.get(location.removeprefix(PUBLIC_URL), headers={"Accept": accept})


async def authorise(api: Api, browser: httpx.AsyncClient, credential_id: str | None = None) -> httpx.Response:
    location = await provider_redirect(browser, await authorize_url(api, credential_id))
    r = await callback(api, location)
    assert r.status_code == 200, r.text
    return r


async def stored(runtime: Any, credential_id: str = "default") -> dict[str, str]:
    values: dict[str, str] = await runtime.credentials.get(SLUG, credential_id) or {}
    return values


async def whoami(api: Api, **body: Any) -> httpx.Response:
    return await api.post(f"/api/integrations/{SLUG}/operations/whoami", json={"params": {}, **body})


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_state(location: str, state: str) -> str:
    q = query_of(location)
    q["state"] = state
    return CALLBACK + "?" + httpx.QueryParams(q).__str__()


# ----------------------------------------------------------------- the authorization request


@pytest.mark.usefixtures("client_registered")
async def test_authorize_redirects_with_pkce_s256_and_signed_state(api: Api, running: Running) -> None:
    r = await api.get(f"/api/integrations/{SLUG}/oauth2/authorize")
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith(running.oauth_url + "/authorize?")
    q = query_of(location)
    assert q["response_type"] == "code"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == CALLBACK
    assert q["scope"] == "read profile"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43  # base64url(SHA-256), RFC 7636 §4.2
    assert "code_verifier" not in q and CLIENT_SECRET not in location
    payload, _, signature = q["state"].partition(".")
    assert payload and signature
    # A second authorisation gets a fresh challenge and state.
    again = query_of(await authorize_url(api))
    assert again["code_challenge"] != q["code_challenge"] and again["state"] != q["state"]


async def test_authorize_needs_admin_an_oauth2_integration_and_a_client_id(api: Api) -> None:
    r = await api.get(f"/api/integrations/{SLUG}/oauth2/authorize", role="agent")
    assert r.status_code == 403
    r = await api.get(f"/api/integrations/{SLUG}/oauth2/authorize")
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "needs_credentials"
    assert "clientId" in error["message"] and f"PUT /api/integrations/{SLUG}/credentials" in error["message"]
    assert CALLBACK in error["message"]  # the redirect URI to register with the provider
    r = await api.get("/api/integrations/plain/oauth2/authorize")
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_oauth2"
    r = await api.get("/api/integrations/nope/oauth2/authorize")
    assert r.status_code == 404


# ----------------------------------------------------------------- the callback and the connector


@pytest.mark.usefixtures("client_registered")
async def test_callback_stores_tokens_and_the_connector_uses_them(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    p = running.provider
    r = await authorise(api, browser)
    body = r.json()
    assert body["ok"] is True and body["integration"] == SLUG and body["credentialId"] == "default"
    assert body["scope"] == "read profile" and body["hasRefreshToken"] is True
    # The provider verified the client secret (HTTP Basic) and the PKCE verifier.
    assert p.token_requests == [
        {"grant": "authorization_code", "auth": "basic", "status": 200, "error": None}
    ]
    issued = p.tokens[-1]
    values = await stored(runtime)
    assert values["accessToken"] == issued.access_token
    assert values["refreshToken"] == issued.refresh_token
    assert values["tokenType"] == "Bearer" and values["scope"] == "read profile"
    assert abs(int(values["expiresAt"]) - (issued.issued_at + 3600)) <= 5
    assert values["clientId"] == CLIENT_ID and values["clientSecret"] == CLIENT_SECRET

    detail = (await api.get(f"/api/integrations/{SLUG}")).json()
    assert detail["status"] == "ready"
    assert detail["secretBindings"] == [{"key": "accessToken", "set": True, "required": True}]

    r = await whoami(api)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"user": USER, "scope": "read profile", "tokenSerial": issued.serial}
    assert p.refreshes() == 0


@pytest.mark.usefixtures("client_registered")
async def test_callback_answers_a_page_for_browsers_and_serves_named_credentials(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    await api.put(
        f"/api/integrations/{SLUG}/credentials/tenant-b",
        json={"values": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}},
    )
    location = await provider_redirect(browser, await authorize_url(api, "tenant-b"))
    r = await callback(api, location, accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    assert f"integration &#x27;{SLUG}&#x27; is authorised (credential &#x27;tenant-b&#x27;)" in r.text
    assert (await stored(runtime, "tenant-b"))["accessToken"] == running.provider.tokens[-1].access_token
    assert "accessToken" not in await stored(runtime)  # the default credential is untouched

    r = await whoami(api, credentialId="tenant-b")
    assert r.status_code == 200 and r.json()["data"]["user"] == USER


# ----------------------------------------------------------------- refresh


@pytest.mark.usefixtures("client_registered")
async def test_an_expiring_token_is_refreshed_before_the_call(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    p = running.provider
    p.lifetime_s = 30  # inside Bollard's 60 s refresh margin: due for refresh at once
    await authorise(api, browser)
    first = p.tokens[-1]
    p.lifetime_s = 3600
    r = await whoami(api)
    assert r.status_code == 200, r.text
    assert p.refreshes() == 1
    second = p.tokens[-1]
    assert r.json()["data"]["tokenSerial"] == second.serial
    values = await stored(runtime)
    assert values["accessToken"] == second.access_token
    assert values["refreshToken"] == second.refresh_token != first.refresh_token  # rotated
    assert first.revoked  # the provider retired the old pair
    # Fresh now: the next call refreshes nothing.
    assert (await whoami(api)).status_code == 200
    assert p.refreshes() == 1


@pytest.mark.usefixtures("client_registered")
async def test_test_connection_refreshes_too(api: Api, browser: httpx.AsyncClient, running: Running) -> None:
    running.provider.lifetime_s = 30
    await authorise(api, browser)
    running.provider.lifetime_s = 3600
    r = await api.post(f"/api/integrations/{SLUG}/test", json={})
    assert r.status_code == 200
    assert r.json()["ok"] is True, r.json()
    assert running.provider.refreshes() == 1


@pytest.mark.usefixtures("client_registered")
async def test_ten_concurrent_calls_with_an_expired_token_refresh_once(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    p = running.provider
    await authorise(api, browser)
    # Bollard's clock moves past the token's expiry (the provider's has not: a real
    # provider accepts a refresh of a grant whose access token has expired).
    real = runtime.oauth2.clock
    runtime.oauth2.clock = lambda: real() + 3600 + 1
    responses = await asyncio.gather(*(whoami(api) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    assert [r["grant"] for r in p.token_requests] == ["authorization_code", "refresh_token"]
    assert p.refreshes() == 1
    assert {r.json()["data"]["tokenSerial"] for r in responses} == {p.tokens[-1].serial}
    assert (await stored(runtime))["accessToken"] == p.tokens[-1].access_token


@pytest.mark.usefixtures("client_registered")
async def test_a_second_replica_uses_the_token_the_first_refreshed(
    api: Api,
    browser: httpx.AsyncClient,
    running: Running,
    runtime: Any,
    integrations_dir: Path,
    data_dir: Path,
) -> None:
    """Two replicas on one state database (DESIGN §12): the second one had read the old
    tokens, finds them due, and takes the first one's refreshed tokens instead of
    refreshing with a rotated-away refresh token."""
    p = running.provider
    p.lifetime_s = 30
    await authorise(api, browser)
    p.lifetime_s = 3600
    other = Runtime(settings(running, integrations_dir, data_dir))
    await other.start(watch=False)
    try:
        version = other.registry.get(SLUG).version
        stale = await other.credentials.get(SLUG, "default")
        assert stale is not None and stale["accessToken"] == p.tokens[-1].access_token
        assert (await whoami(api)).status_code == 200  # the first replica refreshes
        values = await other.execution.credential_values(version, "default")
        assert values["accessToken"] == p.tokens[-1].access_token != stale["accessToken"]
        assert [r["grant"] for r in p.token_requests] == ["authorization_code", "refresh_token"]
    finally:
        await other.stop()


@pytest.mark.usefixtures("client_registered")
async def test_a_revoked_grant_needs_a_new_authorisation(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    p = running.provider
    p.lifetime_s = 30
    await authorise(api, browser)
    # The user revokes Bollard's access at the provider (RFC 7009).
    refresh_token = p.tokens[-1].refresh_token
    assert refresh_token is not None
    r = await browser.post(
        running.oauth_url + "/revoke",
        data={"token": refresh_token, "token_type_hint": "refresh_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert r.status_code == 200
    p.lifetime_s = 3600

    r = await whoami(api)
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "needs_credentials"
    assert f"authorise again: GET /api/integrations/{SLUG}/oauth2/authorize" in error["message"]
    assert p.token_requests[-1]["status"] == 400 and "invalid_grant" in p.token_requests[-1]["error"]
    values = await stored(runtime)
    assert "accessToken" not in values and "refreshToken" not in values
    assert values["reauthorize"] == "invalid_grant"
    assert values["clientId"] == CLIENT_ID  # the client registration stays

    catalog = (await api.get("/api/integrations")).json()["integrations"]
    item = next(i for i in catalog if i["slug"] == SLUG)
    assert item["status"] == "needs_credentials" and item["missingCredentials"] == ["accessToken"]
    # Asking again does not hammer the provider; the message stays the same.
    requests_before = len(p.token_requests)
    r = await whoami(api)
    assert r.status_code == 409 and "authorise again" in r.json()["error"]["message"]
    assert len(p.token_requests) == requests_before

    # Authorising again clears the marker and the integration works.
    await authorise(api, browser)
    assert "reauthorize" not in await stored(runtime)
    assert (await whoami(api)).status_code == 200


# ----------------------------------------------------------------- refused callbacks


@pytest.mark.usefixtures("client_registered")
async def test_a_tampered_state_is_refused_and_stores_nothing(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    location = await provider_redirect(browser, await authorize_url(api))
    state = query_of(location)["state"]
    payload, _, signature = state.partition(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b'"provider"', b'"plain"')
    )
    for bad in (f"{payload}.{flipped}", f"{other.decode().rstrip('=')}.{signature}", "garbage", ""):
        r = await callback(api, with_state(location, bad))
        assert r.status_code == 400, bad
        error = r.json()["error"]
        assert error["code"] == "invalid_state", error
        assert "start" in error["message"] and "/oauth2/authorize" in error["message"]
    assert "accessToken" not in await stored(runtime)
    assert running.provider.token_requests == []  # no code was exchanged
    # The genuine state still works afterwards.
    assert (await callback(api, location)).status_code == 200


@pytest.mark.usefixtures("client_registered")
async def test_an_expired_state_is_refused(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    location = await provider_redirect(browser, await authorize_url(api))
    real = runtime.oauth2.clock
    runtime.oauth2.clock = lambda: real() + runtime.settings.oauth2_state_ttl_s + 1
    r = await callback(api, location)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "state_expired"
    assert f"start again with GET /api/integrations/{SLUG}/oauth2/authorize" in error["message"]
    assert "accessToken" not in await stored(runtime)
    assert running.provider.token_requests == []


@pytest.mark.usefixtures("client_registered")
async def test_a_state_works_once(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    location = await provider_redirect(browser, await authorize_url(api))
    assert (await callback(api, location)).status_code == 200
    before = await stored(runtime)
    r = await callback(api, location)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "state_used"
    assert "already completed" in r.json()["error"]["message"]
    assert await stored(runtime) == before
    assert len(running.provider.token_requests) == 1  # the replayed code never reached the provider


@pytest.mark.usefixtures("client_registered")
async def test_the_provider_refusing_is_reported_and_stores_nothing(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    location = await provider_redirect(browser, await authorize_url(api), deny=True)
    assert query_of(location)["error"] == "access_denied"
    r = await callback(api, location)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "access_denied"
    assert "did not authorise" in error["message"] and "nothing was stored" in error["message"]
    html = await callback(api, location, accept="text/html")  # the state is spent now
    assert html.status_code == 400 and "Authorisation failed" in html.text
    assert "accessToken" not in await stored(runtime)


async def test_a_failed_code_exchange_stores_nothing(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    wrong = "wrong-secret-" + generate_token(20)
    await api.put(
        f"/api/integrations/{SLUG}/credentials",
        json={"values": {"clientId": CLIENT_ID, "clientSecret": wrong}},
    )
    location = await provider_redirect(browser, await authorize_url(api))
    r = await callback(api, location)
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "token_exchange_failed"
    assert "invalid_client" in error["message"] and "clientSecret" in error["message"]
    assert wrong not in r.text
    assert running.provider.token_requests[-1]["status"] == 401
    assert "accessToken" not in await stored(runtime)


@pytest.mark.usefixtures("client_registered")
async def test_token_requests_to_local_addresses_need_the_operator_opt_in(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any
) -> None:
    runtime.settings.allow_private_egress = False
    location = await provider_redirect(browser, await authorize_url(api))
    r = await callback(api, location)
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "private or local address" in message and "BOLLARD_ALLOW_PRIVATE_EGRESS" in message
    assert running.provider.token_requests == []
    assert "accessToken" not in await stored(runtime)


# ----------------------------------------------------------------- nothing leaks


@pytest.mark.usefixtures("client_registered")
async def test_no_secret_reaches_responses_the_execution_log_or_the_server_log(
    api: Api, browser: httpx.AsyncClient, running: Running, runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    p = running.provider
    texts: list[str] = []

    async def keep(r: httpx.Response) -> httpx.Response:
        texts.append(r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items()))
        return r

    p.lifetime_s = 30
    location = await provider_redirect(
        browser,
        (
            await keep(await api.get(f"/api/integrations/{SLUG}/oauth2/authorize", params={"format": "json"}))
        ).json()["authorizeUrl"],
    )
    await keep(await callback(api, location))
    await keep(await callback(api, location))  # reused
    p.lifetime_s = 3600
    await keep(await whoami(api))  # refreshes
    await keep(await api.post(f"/api/integrations/{SLUG}/test", json={}))
    assert p.refreshes() == 1
    await browser.post(
        running.oauth_url + "/revoke",
        data={"token": p.tokens[-1].refresh_token or ""},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    runtime.oauth2.clock = lambda: time.time() + 7200
    await keep(await whoami(api))  # invalid_grant
    for path in (f"/api/integrations/{SLUG}", "/api/integrations", "/api/executions"):
        await keep(await api.get(path))
    assert "whoami" in texts[-1]

    # Bollard's log lines only; the provider's own (authlib, uvicorn) are its business.
    own = [r for r in caplog.records if not r.name.startswith(("authlib", "uvicorn"))]
    assert any(r.name == "bollard.oauth2" for r in own)
    lines = [r.getMessage() + (r.exc_text or "") for r in own]
    secrets = p.secrets()
    assert len(p.verifiers) == 1 and len(p.tokens) == 2
    for secret in secrets:
        for text in texts + lines:
            assert secret not in text
