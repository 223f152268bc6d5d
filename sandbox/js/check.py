"""Deno's own parse of a TS/JS connector at load time (DESIGN §3: a syntax error is a load
error with its line): :func:`deno_load_errors` hands the source to a locked-down Deno
worker in check mode (the same launcher, layers and permissions as the pool's, as uid
65534; it parses and never executes) and returns what its ``loaded`` answer says. The
checker is started on first use (~0.5 s) and reused; calls block, so callers run them off
the event loop: the package loader does (:func:`bollard.platform.packages.build_version`).

Results are cached by the source's hash: a reload or ``validate`` of unchanged code does
not start Deno again.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import select
import subprocess
import sys
import time
from collections import OrderedDict
from threading import Lock

from ..frames import HEADER, encode_frame
from ..isolation import UNPRIVILEGED_ID
from ..limits import MIB
from . import deno_binary

CHECK_MEMORY_BYTES = 256 * MIB
CHECK_CPU_BUDGET_S = 20
CHECK_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 1 * MIB
CACHE_SIZE = 256
MAX_CHECKS = 20  # sources one checker parses before it is replaced (it keeps each module)

_cache: OrderedDict[str, list[str]] = OrderedDict()
_lock = Lock()


class _Unavailable(Exception):
    pass


def _read_frame(stream: int, deadline: float) -> dict[str, object]:
    buffer = b""
    need = HEADER.size
    size = body = -1
    while True:
        while len(buffer) < need:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
                raise _Unavailable("Deno did not answer in time")
            chunk = os.read(stream, 65536)
            if not chunk:
                raise _Unavailable("Deno exited before answering")
            buffer += chunk
        if size < 0:
            size, body = HEADER.unpack_from(buffer)
            if size + body > MAX_ANSWER_BYTES:
                raise _Unavailable("Deno's answer is too large")
            need = HEADER.size + size + body
            continue
        message = json.loads(buffer[HEADER.size : HEADER.size + size])
        if type(message) is not dict:
            raise _Unavailable("Deno sent an invalid answer")
        return message


class _Checker:
    """One locked-down Deno worker in check mode (``worker.js`` answers ``load`` messages
    only), reused for :data:`MAX_CHECKS` sources, then replaced (each parse is a module it
    keeps)."""

    def __init__(self, deno: str) -> None:
        self.deno = deno
        self.checks = 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-B",
                "-m",
                "bollard.sandbox.js.launcher",
                str(CHECK_MEMORY_BYTES),
                str(CHECK_CPU_BUDGET_S),
                str(UNPRIVILEGED_ID),
                "0,0",  # priority: as the host (a worker never raises its own)
                deno,
                "check",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            start_new_session=True,
        )
        assert self.process.stdout is not None
        ready = _read_frame(self.process.stdout.fileno(), time.monotonic() + CHECK_TIMEOUT_S)
        if ready.get("type") != "ready":
            self.close()
            raise _Unavailable("Deno sent an invalid greeting")

    def check(self, source: str, filename: str) -> list[str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.checks += 1
        try:
            self.process.stdin.write(encode_frame({"type": "load", "source": source, "filename": filename}))
            self.process.stdin.flush()
        except OSError as exc:
            raise _Unavailable(str(exc)) from None
        loaded = _read_frame(self.process.stdout.fileno(), time.monotonic() + CHECK_TIMEOUT_S)
        errors = loaded.get("errors")
        if loaded.get("type") != "loaded" or type(errors) is not list:
            raise _Unavailable("Deno sent an invalid load answer")
        return [] if loaded.get("ok") is True else [str(e)[:2000] for e in errors[:20]]

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


_checker: _Checker | None = None


def _close_checker() -> None:
    global _checker
    if _checker is not None:
        _checker.close()
        _checker = None


atexit.register(_close_checker)


def _run(source: str, filename: str, deno: str) -> list[str]:
    """Parse with the shared checker (started on first use); called under ``_lock``."""
    global _checker
    if _checker is not None and (_checker.checks >= MAX_CHECKS or _checker.deno != deno):
        _close_checker()
    if _checker is None:
        _checker = _Checker(deno)
    try:
        return _checker.check(source, filename)
    except (_Unavailable, ValueError):
        _close_checker()
        raise _Unavailable("the Deno checker failed") from None


def deno_load_errors(source: str, filename: str) -> list[str] | None:
    """Deno's load errors for ``source`` (each ``connector.ts line N: …``; ``[]`` when it
    loads), or ``None`` when Deno cannot run here (the host's tree-sitter check stands)."""
    deno = deno_binary()
    if deno is None:
        return None
    key = hashlib.sha256(f"{filename}\0{source}".encode("utf-8", "surrogatepass")).hexdigest()
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return list(_cache[key])
        try:
            errors = _run(source, filename, deno)
        except _Unavailable:
            return None
        _cache[key] = errors
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return list(errors)
