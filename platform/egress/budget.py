"""What one ``ctx.http`` request may cost the host (DESIGN §4.6, hardening issue items 1–2).

The host parses and decodes bytes from upstreams a connector chose, so each request gets
budgets that bound memory and CPU whatever the upstream sends:

- :class:`WireBudget`: raw bytes read from the socket (head, interim 1xx responses,
  chunk framing and body, across redirects), bytes before the final response head of a
  hop (an endless ``100 Continue`` stream ends here), and socket reads. The pinned
  backend charges every read (:data:`CURRENT_BUDGET`, set for the task sending the
  request), below the HTTP parser.
- :class:`BodyReader`: the body of the final response, into one ``bytearray``: body
  chunks counted (one-byte chunks end early), at most one content-coding (gzip,
  deflate; br when the ``brotli`` module is installed) decoded here, streaming, with
  the output capped one byte past the remaining response budget; stacked or unknown
  codings are refused.

Every refusal is :class:`~bollard.sandbox.errors.HttpRequestRefused` ``limit_exceeded``
naming the limit and what would fix it.
"""

from __future__ import annotations

import zlib
from contextvars import ContextVar
from typing import Protocol

from bollard.sandbox.errors import HttpRequestRefused

__all__ = [
    "CURRENT_BUDGET",
    "MAX_HEAD_BYTES",
    "SUPPORTED_CODINGS",
    "BodyReader",
    "WireBudget",
    "max_events",
]

MAX_HEAD_BYTES = 64 * 1024
"""Raw bytes one hop may send before its final response head (headers and 1xx responses).
Counted per socket read, so it must stay at least one read's size (64 KiB): the read that
ends the head may carry body bytes too."""

try:  # optional: br only when a brotli binding with bounded output is installed
    import brotli as _brotli  # type: ignore[import-not-found, unused-ignore]

    _brotli.Decompressor().process(b"", output_buffer_limit=1)
    _HAS_BROTLI = True
except Exception:  # noqa: BLE001 - missing module, or one without output_buffer_limit
    _HAS_BROTLI = False

SUPPORTED_CODINGS: tuple[str, ...] = ("gzip", "deflate", *(("br",) if _HAS_BROTLI else ()))
"""Content-codings the host decodes (at most one per response)."""


# A read or body piece smaller than this counts against the event budget: the host's cost
# per piece is fixed (parser events), so tiny pieces are what amplifies host CPU, while
# larger ones are bounded by the byte budgets already.
SMALL_PIECE_BYTES = 512


def max_events(max_response_bytes: int) -> int:
    """Small (< :data:`SMALL_PIECE_BYTES`) socket reads, and small body chunks, one request
    may take: 1,000 plus one per 64 KiB of the response budget (1,160 at the 10 MiB
    default). Measured: 1-byte chunks at the old 11,240 kept ``/healthz`` p99 at ~340 ms."""
    return 1000 + max_response_bytes // (64 * 1024)


def _refused(message: str) -> HttpRequestRefused:
    return HttpRequestRefused("limit_exceeded", message)


class WireBudget:
    """Raw-socket budget of one request, all hops: ``max_wire_bytes`` bytes and
    ``max_reads`` reads in all, :data:`MAX_HEAD_BYTES` before each final head.

    ``origin`` names the upstream in messages; :meth:`start_hop` / :meth:`head_done`
    bracket the head of each hop.
    """

    def __init__(self, origin: str, max_wire_bytes: int, max_reads: int) -> None:
        self.origin = origin
        self.max_wire_bytes = max_wire_bytes
        self.max_reads = max_reads
        self.wire_bytes = 0
        self.reads = 0
        self._head_bytes: int | None = 0  # None once the final head of this hop arrived

    def start_hop(self, origin: str) -> None:
        self.origin = origin
        self._head_bytes = 0

    def head_done(self) -> None:
        self._head_bytes = None

    def charge(self, n: int) -> None:
        """Count one socket read of ``n`` bytes; raise ``limit_exceeded`` past a budget."""
        self.wire_bytes += n
        if n < SMALL_PIECE_BYTES:
            self.reads += 1
        if self._head_bytes is not None:
            self._head_bytes += n
            if self._head_bytes > MAX_HEAD_BYTES:
                raise _refused(
                    f"{self.origin} sent more than {MAX_HEAD_BYTES} bytes before its response "
                    "headers ended (oversized headers or a flood of 1xx interim responses)."
                )
        if self.wire_bytes > self.max_wire_bytes:
            raise _refused(
                f"{self.origin} sent more than {self.max_wire_bytes} bytes on the wire for one "
                "request (the response size limit plus framing); request less data."
            )
        if self.reads > self.max_reads:
            raise _refused(
                f"{self.origin} sent its response in more than {self.max_reads} pieces (the "
                "per-request event budget); the upstream is trickling data."
            )


CURRENT_BUDGET: ContextVar[WireBudget | None] = ContextVar("bollard_egress_budget", default=None)
"""The :class:`WireBudget` of the request the current task is sending (the pinned
backend's reads run in that task: httpcore does HTTP/1.1 I/O in the caller's task)."""


class _Decoder(Protocol):
    def feed(self, data: bytes, room: int) -> bytes: ...


class _Zlib:
    """gzip (``wbits`` 31) or deflate: zlib-wrapped as RFC 9110 §8.4.1.2 says, raw
    deflate as some servers send it (the first bytes decide)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._obj = zlib.decompressobj(31 if coding == "gzip" else 15)
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        if self._obj.eof:
            return b""  # bytes after the end of the stream are ignored, not decoded
        try:
            out = self._obj.decompress(data, room + 1)
        except zlib.error:
            if self._coding != "deflate" or self._started:
                raise
            self._obj = zlib.decompressobj(-15)
            out = self._obj.decompress(data, room + 1)
        self._started = True
        return out


class _Brotli:
    def __init__(self) -> None:
        self._obj = _brotli.Decompressor()

    def feed(self, data: bytes, room: int) -> bytes:
        out: bytes = self._obj.process(data, output_buffer_limit=room + 1)
        return out


def _decoder(content_encoding: str, origin: str) -> _Decoder | None:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) > 1:
        raise _refused(
            f"The response from {origin} has stacked content-codings (Content-Encoding: "
            f"{', '.join(codings)[:80]}); Bollard decodes at most one."
        )
    coding = {"x-gzip": "gzip"}.get(codings[0], codings[0])
    if coding not in SUPPORTED_CODINGS:
        raise _refused(
            f"The response from {origin} uses Content-Encoding {coding[:40]!r}, which Bollard "
            f"does not decode; send Accept-Encoding with one of {', '.join(SUPPORTED_CODINGS)}."
        )
    return _Brotli() if coding == "br" else _Zlib(coding)


class BodyReader:
    """Accumulates one response body into a ``bytearray``, decoding its content-coding.

    ``limit``: decoded bytes allowed; ``max_chunks``: body pieces allowed. :meth:`feed`
    each piece off the wire, then :meth:`result`. Raises ``limit_exceeded`` (too large,
    too many pieces, stacked or unknown coding) or ``network_error`` (corrupt coding).
    """

    def __init__(self, content_encoding: str, origin: str, limit: int, max_chunks: int) -> None:
        self._decoder = _decoder(content_encoding, origin)
        self._origin = origin
        self._limit = limit
        self._max_chunks = max_chunks
        self._chunks = 0
        self.body = bytearray()

    def too_large(self) -> HttpRequestRefused:
        return _refused(
            f"The response from {self._origin} is larger than {self._limit} bytes (the response "
            "size limit); request less data, for example with pagination or filters."
        )

    def feed(self, data: bytes) -> None:
        if len(data) < SMALL_PIECE_BYTES:
            self._chunks += 1
        if self._chunks > self._max_chunks:
            raise _refused(
                f"The response from {self._origin} came in more than {self._max_chunks} pieces "
                "(the per-request event budget); the upstream is trickling data."
            )
        if self._decoder is not None:
            try:
                data = self._decoder.feed(data, self._limit - len(self.body))
            except Exception:  # noqa: BLE001 - zlib.error, brotli.error: corrupt upstream data
                raise HttpRequestRefused(
                    "network_error", f"The response from {self._origin} has a corrupt content-coding."
                ) from None
        self.body += data
        if len(self.body) > self._limit:
            raise self.too_large()

    def result(self) -> bytes:
        return bytes(self.body)
