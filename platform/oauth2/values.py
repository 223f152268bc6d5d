"""OAuth2 tokens as credential values: what a token response stores, and what callers see.

A token response (RFC 6749 §5.1) becomes the credential values ``accessToken``,
``refreshToken``, ``expiresAt`` (epoch seconds), ``tokenType`` and ``scope``; the host's
bookkeeping keys (:data:`INTERNAL_KEYS`) stay out of what connectors receive.
"""

from __future__ import annotations

from typing import Any

from bollard.platform.packages import IntegrationVersion

INTERNAL_KEYS = frozenset({"expiresAt", "tokenType", "scope", "reauthorize"})
"""Credential values the host keeps for itself: never handed to connectors (unless the
manifest binds them) and not hunted for when redacting (``Bearer`` must stay readable)."""


def token_values(token: dict[str, Any], now: float, *, refresh: bool) -> dict[str, str]:
    """Credential values from a token response (empty string: remove the key).

    ``expires_in`` becomes ``expiresAt`` (epoch seconds). After a refresh, a refresh token
    or scope the provider did not repeat is kept (RFC 6749 §6); after a new authorisation
    everything is replaced.
    """
    keep = "__keep__"
    out: dict[str, str] = {"accessToken": str(token["access_token"]), "reauthorize": ""}
    out["refreshToken"] = str(token.get("refresh_token") or (keep if refresh else ""))
    out["tokenType"] = str(token.get("token_type") or "")
    out["scope"] = str(token.get("scope") or (keep if refresh else ""))
    expires_at = ""
    try:
        expires_in = float(token.get("expires_in"))  # type: ignore[arg-type]
        if 0 < expires_in < 10 * 365 * 86400:
            expires_at = str(int(now + expires_in))
    except (TypeError, ValueError):
        pass
    out["expiresAt"] = expires_at
    return {k: v for k, v in out.items() if v != keep}


def expires_at(values: dict[str, str]) -> float | None:
    """``expiresAt`` as epoch seconds, or ``None`` when absent or unreadable."""
    try:
        return float(values["expiresAt"])
    except (KeyError, ValueError):
        return None


def public_values(version: IntegrationVersion, values: dict[str, str]) -> dict[str, str]:
    """The values without the host's bookkeeping (:data:`INTERNAL_KEYS`) unless the
    manifest binds such a key itself."""
    bound = set(version.manifest.secret_bindings)
    return {k: v for k, v in values.items() if k not in INTERNAL_KEYS or k in bound}
