"""Redacting and JSON-encoding result envelopes without blocking the event loop.

DESIGN §4.6 (hardening issue item 3): ``/healthz`` answers while any one call processes
its result. A small envelope of a call with secrets is encoded on the loop by C's
encoder and searched for them as below; only when one is found is it redacted
structurally, then encoded by the response; otherwise its text is the answer. A big
one (more than :data:`SMALL_NODES` values or :data:`SMALL_CHARS` characters of
strings) is encoded in a worker thread by the pure-Python encoder (C's
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


_SCALARS = frozenset({int, float, bool, type(None)})


def is_small(value: Any) -> bool:
    """Whether ``value`` (JSON data) has at most :data:`SMALL_NODES` values and
    :data:`SMALL_CHARS` string characters; stops counting past either (bounded cost).

    A dict's or list's plain members (str, int, float, bool, None) are counted in place
    rather than pushed and popped, and a dict's string keys measured in one ``join``:
    the walk was 17 % of a 50-row SQL call's server time (docs/perf-profile.md)."""
    nodes, chars = 0, 0
    stack = [value]
    push = stack.append
    while stack:
        item = stack.pop()
        nodes += 1
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, dict | list):
            if len(item) > SMALL_NODES:  # each member is a value of its own
                return False
            if isinstance(item, dict):
                try:
                    chars += len("".join(item))  # every key a str: their characters
                except TypeError:
                    chars += sum(len(k) for k in item if isinstance(k, str))
                members: Any = item.values()
            else:
                members = item
            for member in members:
                kind = type(member)
                if kind is str:
                    nodes += 1
                    chars += len(member)
                elif kind in _SCALARS:
                    nodes += 1
                else:
                    push(member)
        if nodes > SMALL_NODES or chars > SMALL_CHARS:
            return False
    return True


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
    """``(redacted body, its JSON text or None)``: for a small body with secrets, its
    text when no secret is in it (encoded here by the C encoder and searched, as big
    ones are: half the cost of walking it, and the response need not encode it again),
    else the body redacted here and ``None`` (the response encodes it); the text for a
    big one (redacted and encoded in a worker thread). Answer a text as it is."""
    if is_small(body):
        if not any(secrets):
            return body, None  # nothing to redact
        try:
            text = _ENCODER.encode(body)  # one shot: C's encoder, the response's settings
        except (TypeError, ValueError):  # the response reports such a body as before
            return redact(body, secrets), None
        if any(_escaped(s) in text for s in secrets if s):
            return redact(body, secrets), None
        return body, text
    return await asyncio.to_thread(_redact_encode, body, secrets)
