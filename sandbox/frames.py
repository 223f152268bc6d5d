"""The wire format between the host and a sandbox worker: frames and the JSON inside them.

Framing: every message is a frame of an 8-byte header (two big-endian unsigned
32-bit integers: the length of the JSON part, the length of the body part), the
message as one JSON object (UTF-8), then the body as raw bytes. Only bodies travel
in the body part (a response body to the worker, a binary request body to the host),
so they are never base64-encoded or JSON-escaped; every other message has an empty
one. Each side caps the frames it accepts (:func:`read_frame_header`).

JSON: strict both ways (no NaN or Infinity, valid UTF-8, bounded nesting), and values
crossing the boundary are copied into exact plain types (:func:`plain_json`). What the
messages hold, and the host's checks of each one, are :mod:`bollard.sandbox.protocol`.
"""

from __future__ import annotations

import json
import json.scanner
import math
import re
import struct
from typing import Any, NoReturn

HEADER = struct.Struct(">II")  # JSON part, body part (bytes)
MAX_JSON_DEPTH = 100  # nesting levels of a result, params or a JSON body


class ProtocolError(Exception):
    """A message broke the protocol (wrong type, size or shape). On the host this
    means the worker is no longer trusted: it is killed."""


# --- plain JSON values ---------------------------------------------------------------


def plain_json(value: Any, what: str = "value") -> Any:
    """Return a copy of ``value`` made only of exact ``dict`` (``str`` keys), ``list``,
    ``str``, ``int``, ``float``, ``bool`` and ``None``; tuples become lists.

    Exact types only: a ``dict`` or ``str`` subclass made by connector code could lie
    through its methods (research/restrictedpython.md, "type confusion at the
    boundary"), so it is refused rather than trusted; nothing here calls code the
    connector defined. Raises ``TypeError`` naming the offending type and its path
    (``what['items'][3]``), ``ValueError`` for non-finite floats and for nesting
    deeper than :data:`MAX_JSON_DEPTH`.
    """
    return _plain(value, what, 0)


def _plain(value: Any, path: str, depth: int) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{path} is not a finite number ({value!r}); JSON has no NaN or Infinity")
        return value
    if depth >= MAX_JSON_DEPTH:
        raise ValueError(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep")
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in dict.items(value):
            if type(key) is not str:
                raise TypeError(f"{path} has a key of type {type(key).__name__}; JSON keys must be str")
            out[key] = _plain(item, f"{path}[{key!r}]", depth + 1)
        return out
    if kind is list or kind is tuple:
        return [_plain(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise TypeError(f"{path} is not JSON-serialisable (found {kind.__name__})")


# One encoder and one decoder for every message (json.dumps/loads with options build a
# new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON text of a plain value (no NaN/Infinity: ``ValueError``)."""
    return _ENCODER.encode(value)


# --- framing --------------------------------------------------------------------------


_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; a lone surrogate (which UTF-8 cannot carry, e.g. from
    ``ctx.log("\\ud800")``) becomes U+FFFD, so any ``str`` survives a frame (hardening
    issue item 10)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def encode_frame(message: dict[str, Any], body: bytes = b"") -> bytes:
    """One frame: the header, the message as UTF-8 JSON, then ``body``."""
    payload = utf8(dumps(message))
    return HEADER.pack(len(payload), len(body)) + payload + body


def frame_head(message: dict[str, Any], body_size: int) -> bytes:
    """The header and JSON part of a frame whose body of ``body_size`` bytes the caller
    writes after it (one ``writev``), so a big body is never copied into the frame."""
    payload = utf8(dumps(message))
    return HEADER.pack(len(payload), body_size) + payload


def encode_raw_frame(payload_text: str) -> bytes:
    """A body-less frame around JSON text the caller already built (avoids encoding twice)."""
    payload = utf8(payload_text)
    return HEADER.pack(len(payload), 0) + payload


def read_frame_header(header: bytes | bytearray, max_bytes: int) -> tuple[int, int]:
    """``(JSON size, body size)`` from a frame header; ``ProtocolError`` when together
    they exceed ``max_bytes``."""
    size, body_size = HEADER.unpack_from(header)
    if size + body_size > max_bytes:
        raise ProtocolError(f"message of {size + body_size} bytes exceeds the cap of {max_bytes} bytes")
    return size, body_size


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("non-finite number")
    return number


def _refuse_constant(text: str) -> NoReturn:
    raise ValueError(f"{text} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)
# The same rules in pure Python: C's decoder holds the GIL for a whole payload (0.25 s for
# 5 MB of ``{}``), so a thread running it still stalls the event loop; this one lets the
# interpreter switch threads every few milliseconds (hardening issue item 3).
_YIELDING_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)
_YIELDING_DECODER.scan_once = json.scanner.py_make_scanner(_YIELDING_DECODER)  # type: ignore[attr-defined]


def decode_payload(payload: bytes, *, yielding: bool = False) -> dict[str, Any]:
    """Parse a frame payload into a message dict with a ``str`` ``type``.

    Strict JSON: NaN/Infinity, non-finite numbers, invalid UTF-8, integers beyond
    Python's digit limit and nesting beyond the parser's recursion limit all raise
    ``ProtocolError``. ``yielding=True`` parses in pure Python (several times slower, but
    other threads run meanwhile): for a big payload parsed in a worker thread.
    """
    decoder = _YIELDING_DECODER if yielding else _DECODER
    try:
        message = decoder.decode(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"invalid JSON message: {type(exc).__name__}") from None
    if type(message) is not dict or type(message.get("type")) is not str:
        raise ProtocolError("a message must be a JSON object with a string 'type'")
    return message
