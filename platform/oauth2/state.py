"""The signed, expiring, single-use OAuth2 ``state`` (RFC 6749 §10.12, DESIGN §7).

A state is ``base64url(JSON claims) "." base64url(HMAC-SHA256(key, JSON claims))``; the
claims name the integration, the credential, the nonce of the pending record (which holds
the PKCE verifier server-side and is deleted when the state is used: single use) and the
expiry. The key is derived from the credential encryption key, so every replica sharing
that key accepts the states of the others.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.errors import OAuth2Error


@dataclass(frozen=True)
class StateClaims:
    """What a signed ``state`` carries: the integration, the credential, the nonce naming
    the pending record, and its expiry (epoch seconds)."""

    slug: str
    credential_id: str
    nonce: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def state_key(secret: str) -> bytes:
    """The 32-byte HMAC key for states, derived (HKDF-SHA256) from the credential key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bollard oauth2 state v1").derive(
        secret.encode()
    )


def sign_state(key: bytes, claims: StateClaims) -> str:
    """``base64url(JSON claims) "." base64url(HMAC-SHA256(key, JSON claims))``."""
    payload = json.dumps(
        {"s": claims.slug, "c": claims.credential_id, "n": claims.nonce, "e": claims.expires_at},
        separators=(",", ":"),
    ).encode()
    return _b64(payload) + "." + _b64(hmac.digest(key, payload, "sha256"))


def verify_state(key: bytes, state: str, now: float) -> StateClaims:
    """Check a state's signature and expiry; return its claims.

    Raises :class:`OAuth2Error` ``invalid_state`` (400) for a malformed or tampered state
    and ``state_expired`` (400) for one past its expiry (RFC 6749 §10.12).
    """
    invalid = OAuth2Error(
        "invalid_state",
        "the state parameter is not one Bollard issued (malformed or altered); start the "
        "authorisation again with GET /api/integrations/<slug>/oauth2/authorize",
        status=400,
    )
    payload_text, _, signature_text = state.partition(".")
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(signature, hmac.digest(key, payload, "sha256")):
        raise invalid
    try:
        data = json.loads(payload)
        claims = StateClaims(str(data["s"]), str(data["c"]), str(data["n"]), int(data["e"]))
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if now >= claims.expires_at:
        raise OAuth2Error(
            "state_expired",
            f"this authorisation of integration '{claims.slug}' expired (it must be completed "
            f"within the state lifetime, BOLLARD_OAUTH2_STATE_TTL_S); start again with "
            f"{authorize_path(claims.slug, claims.credential_id)}",
            status=400,
        )
    return claims


def state_nonce(state: str) -> str:
    """The nonce of a state whose signature :func:`verify_state` has checked (it raised
    ``state_expired``): names the pending record to delete."""
    return str(json.loads(_unb64(state.partition(".")[0]))["n"])


def authorize_path(slug: str, credential_id: str) -> str:
    """``GET /api/integrations/{slug}/oauth2/authorize[?credentialId=…]`` as text for messages."""
    query = "" if credential_id == DEFAULT_CREDENTIAL_ID else f"?credentialId={credential_id}"
    return f"GET /api/integrations/{slug}/oauth2/authorize{query}"
