"""OAuth2Service: the authorization-code flow with PKCE, and token refresh (DESIGN §7).

:meth:`OAuth2Service.start_authorization` stores the PKCE verifier (RFC 7636) under a
fresh nonce in the credential store (:data:`PENDING`) and builds the provider URL with a
signed state; :meth:`OAuth2Service.complete_authorization` consumes the state once and
exchanges the code; :meth:`OAuth2Service.fresh_values` refreshes an access token near
expiry (RFC 6749 §6) under a per-(integration, credential) lock and saves the new tokens.
No token, client secret, code or verifier is ever logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import ExecutionError, OAuth2Error, TokenEndpointError
from bollard.platform.oauth2.state import (
    StateClaims,
    authorize_path,
    sign_state,
    state_key,
    state_nonce,
    verify_state,
)
from bollard.platform.oauth2.token_endpoint import token_request, token_ssl_context
from bollard.platform.oauth2.values import expires_at, public_values, token_values
from bollard.platform.packages import IntegrationVersion

if TYPE_CHECKING:
    from bollard.platform.egress import EgressClient
    from bollard.platform.runtime import Runtime

log = logging.getLogger("bollard.oauth2")

CALLBACK_PATH = "/api/integrations/oauth2/callback"
PENDING = "_oauth2"
"""Credential-store namespace of pending authorisations (never a valid slug: slugs start
with a letter or digit), one record per state nonce holding the PKCE verifier."""

REFRESH_MARGIN_S = 60
"""An access token expiring within this many seconds is refreshed before use."""


@dataclass(frozen=True)
class Authorization:
    """A started authorisation: the provider URL to send the browser to, and its expiry."""

    url: str
    slug: str
    credential_id: str
    redirect_uri: str
    expires_at: int


@dataclass(frozen=True)
class Authorized:
    """A completed authorisation (what the callback page may show: no token)."""

    slug: str
    credential_id: str
    scope: str | None
    expires_at: int | None
    has_refresh_token: bool


class OAuth2Service:
    """OAuth2 flows and refresh for a :class:`~bollard.platform.runtime.Runtime`.

    ``refresh_margin_s``: refresh tokens expiring within that many seconds (default
    :data:`REFRESH_MARGIN_S`); ``clock``: epoch seconds (state and token expiry; tests
    move it). Created lazily as ``runtime.oauth2``; ``aclose()`` at stop.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # lazy: runtime imports this package (an import cycle otherwise)
        from bollard.platform.runtime import secret_keys

        self.runtime = runtime
        self.refresh_margin_s = refresh_margin_s
        self.clock = clock
        self._state_key = state_key(secret_keys(runtime.settings)[0])
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._client: EgressClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def redirect_uri(self) -> str:
        """``{public_url}/api/integrations/oauth2/callback`` (``http://{host}:{port}`` by default)."""
        s = self.runtime.settings
        base = (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")
        return base + CALLBACK_PATH

    @property
    def client(self) -> EgressClient:
        """The pinned egress client for token requests (TLS: public CAs + ``oauth2_ca_bundle``)."""
        if self._client is None:
            from bollard.platform.egress import make_client

            self._client = make_client(
                ssl_context=token_ssl_context(self.runtime.settings.oauth2_ca_bundle), max_connections=20
            )
        return self._client

    # --- resolution ----------------------------------------------------------

    def version(self, slug: str) -> IntegrationVersion:
        """The serving version of an ``oauth2`` integration, else :class:`OAuth2Error`."""
        version = self.runtime.registry.require_version(slug)
        m = version.manifest
        if m.auth_method != "oauth2" or m.oauth2_config is None:
            raise OAuth2Error(
                "not_oauth2",
                f"integration '{slug}' uses authMethod '{m.auth_method}', not 'oauth2'; set its "
                f"credentials with PUT /api/integrations/{slug}/credentials instead",
                status=400,
            )
        return version

    async def _client_credentials(self, slug: str, credential_id: str) -> dict[str, str]:
        values = await self.runtime.credentials.get(slug, credential_id) or {}
        if not values.get("clientId"):
            raise OAuth2Error(
                "needs_credentials",
                f"integration '{slug}' has no clientId in credential '{credential_id}'; register "
                f"Bollard with the provider (redirect URI {self.redirect_uri}), then set clientId "
                f"and clientSecret with PUT /api/integrations/{slug}/credentials"
                + ("" if credential_id == DEFAULT_CREDENTIAL_ID else f"/{credential_id}"),
                status=409,
            )
        return values

    # --- the authorization-code flow -----------------------------------------

    async def start_authorization(
        self, slug: str, credential_id: str = DEFAULT_CREDENTIAL_ID
    ) -> Authorization:
        """Make the provider authorization URL (RFC 6749 §4.1.1 with RFC 7636 S256).

        Stores the PKCE verifier and redirect URI under a fresh nonce; the signed state
        names the nonce. Raises :class:`OAuth2Error` (unknown integration, not oauth2,
        invalid credential id, no ``clientId``).
        """
        version = self.version(slug)
        check_credential_id(credential_id)
        values = await self._client_credentials(slug, credential_id)
        await self._sweep_pending()
        cfg = version.manifest.oauth2_config
        assert cfg is not None
        now = self.clock()
        expiry = int(now) + self.runtime.settings.oauth2_state_ttl_s
        nonce = secrets.token_hex(16)
        verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-] (RFC 7636 §4.1)
        redirect_uri = self.redirect_uri
        await self.runtime.credentials.put(
            PENDING,
            nonce,
            {
                "integration": slug,
                "credentialId": credential_id,
                "codeVerifier": verifier,
                "redirectUri": redirect_uri,
                "expiresAt": str(expiry),
            },
            merge=False,
        )
        state = sign_state(self._state_key, StateClaims(slug, credential_id, nonce, expiry))
        url = prepare_grant_uri(
            cfg.authorization_url,
            values["clientId"],
            "code",
            redirect_uri=redirect_uri,
            scope=list(cfg.scopes) or None,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        log.info("oauth2: authorisation of %s (credential %s) started", slug, credential_id)
        return Authorization(url, slug, credential_id, redirect_uri, expiry)

    async def _sweep_pending(self) -> None:
        """Delete pending records past their lifetime (abandoned authorisations)."""
        horizon = self.clock() - self.runtime.settings.oauth2_state_ttl_s - 60
        for info in await self.runtime.credentials.describe(PENDING):
            updated = info.updated_at if info.updated_at.tzinfo else info.updated_at.replace(tzinfo=UTC)
            if updated.timestamp() < horizon:
                await self.runtime.credentials.delete(PENDING, info.credential_id)

    async def complete_authorization(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> Authorized:
        """Handle the provider's redirect (RFC 6749 §4.1.2): check and consume the state,
        exchange the code with the PKCE verifier (§4.1.3, RFC 7636 §4.5), store the tokens.

        Raises :class:`OAuth2Error`: ``invalid_state`` / ``state_expired`` / ``state_used``
        (400), ``access_denied`` or the provider's other error code (400), ``invalid_request``
        (400, no code), ``token_exchange_failed`` (502) — and nothing is stored then.
        """
        if not state:
            raise OAuth2Error(
                "invalid_state",
                "the callback has no state parameter, so it cannot be matched to an authorisation; "
                "start with GET /api/integrations/<slug>/oauth2/authorize",
                status=400,
            )
        try:
            claims = verify_state(self._state_key, state, self.clock())
        except OAuth2Error as e:
            if e.code == "state_expired":
                await self.runtime.credentials.delete(PENDING, state_nonce(state))
            raise
        again = authorize_path(claims.slug, claims.credential_id)
        pending = await self.runtime.credentials.get(PENDING, claims.nonce)
        if pending is None or not await self.runtime.credentials.delete(PENDING, claims.nonce):
            raise OAuth2Error(
                "state_used",
                f"this authorisation of integration '{claims.slug}' was already completed or "
                f"abandoned (a state works once); start again with {again}",
                status=400,
            )
        if pending.get("integration") != claims.slug or pending.get("credentialId") != claims.credential_id:
            raise OAuth2Error(
                "invalid_state",
                f"the state does not match its authorisation; start again with {again}",
                status=400,
            )
        if error:
            reason = error[:80] + (f": {error_description[:300]}" if error_description else "")
            log.info("oauth2: provider refused authorisation of %s (%s)", claims.slug, error[:80])
            raise OAuth2Error(
                error[:80] if error == "access_denied" else "authorization_failed",
                f"the provider did not authorise integration '{claims.slug}' ({reason}); nothing "
                f"was stored. To try again: {again}",
                status=400,
            )
        if not code:
            raise OAuth2Error(
                "invalid_request",
                f"the callback has neither code nor error; start again with {again}",
                status=400,
            )
        version = self.version(claims.slug)
        values = await self._client_credentials(claims.slug, claims.credential_id)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending["redirectUri"],
            "code_verifier": pending["codeVerifier"],
        }
        try:
            token = await self._token_request(version, values, form)
        except TokenEndpointError as e:
            log.warning("oauth2: code exchange for %s failed: %s", claims.slug, e.message)
            raise OAuth2Error(
                "token_exchange_failed",
                f"exchanging the authorisation code of integration '{claims.slug}' failed: {e.message}. "
                f"Nothing was stored; check clientId/clientSecret and oauth2Config.tokenUrl, then {again}",
                status=502,
            ) from None
        new = token_values(token, self.clock(), refresh=False)
        await self.runtime.credentials.put(claims.slug, claims.credential_id, new)
        log.info("oauth2: integration %s (credential %s) authorised", claims.slug, claims.credential_id)
        return Authorized(
            claims.slug,
            claims.credential_id,
            new.get("scope") or None,
            int(new["expiresAt"]) if new.get("expiresAt") else None,
            bool(new.get("refreshToken")),
        )

    # --- refresh -------------------------------------------------------------

    def _due(self, values: dict[str, str], now: float) -> bool:
        expiry = expires_at(values)
        return expiry is not None and expiry - now <= self.refresh_margin_s

    async def fresh_values(
        self, version: IntegrationVersion, credential_id: str, values: dict[str, str]
    ) -> dict[str, str]:
        """The credential values with an access token good for at least the refresh margin.

        Refreshes (RFC 6749 §6) under a per-(integration, credential) lock, re-reading the
        store inside it so concurrent callers refresh once; saves the new tokens (a rotated
        refresh token replaces the old one). Returns the values without the host's
        bookkeeping keys. Raises ``ExecutionError``: ``needs_credentials`` when the grant
        was revoked (``invalid_grant``; the tokens are removed and a ``reauthorize`` marker
        stored), the client was refused, or the token expired with no refresh token;
        ``connection_failed`` when the token endpoint failed and the token has expired
        (before expiry the current token is used and the failure logged).
        """
        slug = version.slug
        if values.get("reauthorize") and "accessToken" not in values:
            raise ExecutionError(
                "needs_credentials", self._reauthorize_message(slug, credential_id, values["reauthorize"])
            )
        if not self._due(values, self.clock()):
            return public_values(version, values)
        lock = self._locks.setdefault((slug, credential_id), asyncio.Lock())
        async with lock:
            current = await self._read_through(slug, credential_id)
            now = self.clock()
            if not self._due(current, now):
                return public_values(version, current)
            expired = now >= (expires_at(current) or 0)
            if not current.get("refreshToken"):
                if expired and current.get("accessToken"):
                    raise ExecutionError(
                        "needs_credentials",
                        f"the OAuth2 access token of integration '{slug}' (credential '{credential_id}') "
                        f"has expired and the provider issued no refresh token; authorise again: "
                        f"{authorize_path(slug, credential_id)}",
                    )
                return public_values(version, current)
            try:
                token = await self._token_request(
                    version,
                    current,
                    {"grant_type": "refresh_token", "refresh_token": current["refreshToken"]},
                )
            except TokenEndpointError as e:
                return public_values(
                    version, await self._refresh_failed(version, credential_id, current, e, expired)
                )
            await self.runtime.credentials.put(
                slug, credential_id, token_values(token, self.clock(), refresh=True)
            )
            log.info("oauth2: access token of %s (credential %s) refreshed", slug, credential_id)
            return public_values(version, await self.runtime.credentials.get(slug, credential_id) or {})

    async def _read_through(self, slug: str, credential_id: str) -> dict[str, str]:
        """The stored values, past any per-process cache: another replica may have just
        refreshed (and rotated) the tokens (DESIGN §12)."""
        self.runtime.credentials.forget(slug, credential_id)
        return await self.runtime.credentials.get(slug, credential_id) or {}

    async def _refresh_failed(
        self,
        version: IntegrationVersion,
        credential_id: str,
        current: dict[str, str],
        e: TokenEndpointError,
        expired: bool,
    ) -> dict[str, str]:
        """Decide what a failed refresh means; return values to go on with or raise."""
        slug = version.slug
        if e.error == "invalid_grant":
            # Another replica may have rotated the refresh token a moment ago (DESIGN §12).
            latest = await self._read_through(slug, credential_id)
            if latest.get("refreshToken") != current.get("refreshToken") and not self._due(
                latest, self.clock()
            ):
                return latest
            await self.runtime.credentials.put(
                slug,
                credential_id,
                {"accessToken": "", "refreshToken": "", "expiresAt": "", "reauthorize": "invalid_grant"},
            )
            log.warning("oauth2: refresh of %s (credential %s) refused: invalid_grant", slug, credential_id)
            raise ExecutionError(
                "needs_credentials", self._reauthorize_message(slug, credential_id, "invalid_grant")
            )
        log.warning(
            "oauth2: refreshing the token of %s (credential %s) failed: %s", slug, credential_id, e.message
        )
        if not expired:
            return current
        if e.error in ("invalid_client", "unauthorized_client"):
            raise ExecutionError(
                "needs_credentials",
                f"the provider refused the OAuth2 client of integration '{slug}' ({e.error}); check "
                f"clientId and clientSecret (PUT /api/integrations/{slug}/credentials), then authorise "
                f"again: {authorize_path(slug, credential_id)}",
            )
        raise ExecutionError(
            "connection_failed",
            f"the OAuth2 access token of integration '{slug}' has expired and refreshing it failed: "
            f"{e.message}",
        )

    @staticmethod
    def _reauthorize_message(slug: str, credential_id: str, reason: str) -> str:
        return (
            f"the provider no longer accepts the OAuth2 grant of integration '{slug}' (credential "
            f"'{credential_id}'; {reason[:40]}: revoked or expired); authorise again: "
            f"{authorize_path(slug, credential_id)}"
        )

    # --- the token endpoint --------------------------------------------------

    async def _token_request(
        self, version: IntegrationVersion, values: dict[str, str], form: dict[str, str]
    ) -> dict[str, Any]:
        """:func:`~bollard.platform.oauth2.token_endpoint.token_request` with this service's
        client and the operator's ``allow_private_egress``. Raises :class:`TokenEndpointError`."""
        return await token_request(
            self.client, version, values, form, allow_private=self.runtime.settings.allow_private_egress
        )
