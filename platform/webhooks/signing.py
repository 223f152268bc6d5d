"""Webhook signatures (DESIGN §6): HMAC-SHA256 over ``timestamp + "." + body``.

Every delivery carries:

- ``X-Bollard-Event``: the event type; ``X-Bollard-Delivery``: the delivery id;
- ``X-Bollard-Timestamp``: Unix seconds when this attempt was signed;
- ``X-Bollard-Signature``: ``sha256=`` and the lower-case hex HMAC-SHA256, keyed with the
  endpoint's secret (UTF-8), of the ASCII timestamp, a ``.``, and the raw body bytes.

A receiver recomputes the HMAC over the bytes it received, compares in constant time and
refuses timestamps older than a few minutes (replays); the README has the recipe.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(
    secret: str, timestamp: int, body: bytes, *, event_type: str, delivery_id: str
) -> dict[str, str]:
    """The headers of one delivery attempt (see the module docstring)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "Bollard-Webhooks",
        "X-Bollard-Event": event_type,
        "X-Bollard-Delivery": delivery_id,
        "X-Bollard-Timestamp": str(timestamp),
        "X-Bollard-Signature": signature(secret, timestamp, body),
    }
