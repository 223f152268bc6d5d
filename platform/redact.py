"""Redaction of credential values from anything that leaves the host (DESIGN §7).

Logs, error messages, results and execution records pass through :func:`redact` with
the values of the credential used for the call, so a connector that echoes, logs,
raises or returns a secret does not leak it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any, TypeVar, cast

T = TypeVar("T")

REDACTED = "[REDACTED]"
# Shorter values ("1", "eu", a port) are too common to hunt for without mangling output.
MIN_SECRET_LENGTH = 4
# Credential fields that are connection settings rather than secrets.
NOT_SECRET_KEYS = frozenset(
    {"server", "port", "database", "username", "ssl", "sslMode", "encrypt", "trustServerCertificate"}
)


def secret_values(values: dict[str, str] | None) -> list[str]:
    """The strings to hide for a credential: every secret value, plus common encodings
    of them (base64 of ``value`` and of ``user:password``), longest first."""
    if not values:
        return []
    found: set[str] = set()
    for key, value in values.items():
        if key in NOT_SECRET_KEYS or len(value) < MIN_SECRET_LENGTH:
            continue
        found.add(value)
        found.add(base64.b64encode(value.encode()).decode().rstrip("="))
    user = values.get("username")
    password = values.get("password")
    if user and password:
        found.add(base64.b64encode(f"{user}:{password}".encode()).decode().rstrip("="))
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


def redact(value: T, secrets: list[str]) -> T:
    """Return ``value`` (JSON data or text) with every secret string replaced; the
    result has the same shape (and so the same type) as ``value``."""
    if not secrets:
        return value
    out: Any = value
    if isinstance(value, str):
        out = redact_text(value, secrets)
    elif isinstance(value, list):
        out = [redact(v, secrets) for v in value]
    elif isinstance(value, dict):
        out = {redact_text(str(k), secrets): redact(v, secrets) for k, v in value.items()}
    return cast(T, out)


# C0 and C1 controls, DEL, the Unicode line/paragraph separators and lone surrogates: what
# could end, rewrite or garble a log line (hardening issue item 10).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


_SHORT_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a Python-style escape
    (``\\r``, ``\\n``, ``\\x1b``, ``\\u2028``), so connector text logged on one line stays
    one line and cannot forge another (DESIGN §4.6)."""
    return _CONTROL.sub(_escape_char, text)
