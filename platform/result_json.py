"""Redacting and JSON-encoding result envelopes without blocking the event loop.

DESIGN §4.6 (hardening issue item 3): ``/healthz`` answers while any one call processes
its result. A small envelope is redacted on the loop and encoded by the response as
before. A big one (more than :data:`SMALL_NODES` values or :data:`SMALL_CHARS`
characters of strings) is encoded in a worker thread by the pure-Python encoder (C's
encoder holds the GIL for the whole value, so a thread running it would still stall the
loop), and redacted in linear time: the encoded text is searched for each secret as JSON
writes it; only when one is found is the value redacted structurally (also in the thread)
and encoded again. The search is sound: JSON escapes character by character, so a secret
inside any string (key or value) appears escaped, as a substring, in the text.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bollard.platform.redact import redact

SMALL_NODES = 20_000  # values (dicts, lists, scalars) encoded on the loop at most
SMALL_CHARS = 1024 * 1024  # characters of strings encoded on the loop at most

# Starlette's JSONResponse settings, so both paths answer the same bytes.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def is_small(value: Any) -> bool:
    """Whether ``value`` (JSON data) has at most :data:`SMALL_NODES` values and
    :data:`SMALL_CHARS` string characters; stops counting past either (bounded cost)."""
    nodes, chars = 0, 0
    stack = [value]
    while stack:
        item = stack.pop()
        nodes += 1
        if nodes > SMALL_NODES or chars > SMALL_CHARS:
            return False
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, dict):
            chars += sum(len(k) for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return chars <= SMALL_CHARS


def encode_yielding(value: Any) -> str:
    """Compact JSON text of ``value`` by the pure-Python encoder (lets other threads run;
    ``ValueError`` for NaN/Infinity)."""
    return "".join(_ENCODER.iterencode(value))


def _escaped(secret: str) -> str:
    return _ENCODER.encode(secret)[1:-1]


def _redact_encode(body: dict[str, Any], secrets: list[str]) -> tuple[dict[str, Any], str]:
    text = encode_yielding(body)
    if any(_escaped(s) in text for s in secrets if s):
        body = redact(body, secrets)
        text = encode_yielding(body)
    return body, text


async def redact_envelope(body: dict[str, Any], secrets: list[str]) -> tuple[dict[str, Any], str | None]:
    """``(redacted body, its JSON text or None)``: ``None`` for a small body (redacted
    here; the response encodes it), the text for a big one (redacted and encoded in a
    worker thread; answer it as is)."""
    if is_small(body):
        return redact(body, secrets), None
    return await asyncio.to_thread(_redact_encode, body, secrets)
