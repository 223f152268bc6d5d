"""The sandbox worker process: ``python -I -B -m bollard.sandbox.worker MEMORY CPU UID NICE``.

Started by :class:`bollard.sandbox.pool.SandboxPool` with the pipe on stdin/stdout
and an empty environment. It isolates itself (:func:`bollard.sandbox.isolation.isolate`)
before reading anything, says ``ready`` with the layers in force, receives one
connector source (``load``), compiles it, and then runs ``execute`` messages one
at a time, each with fresh globals, a fresh ``ctx`` and the secrets of that call
only, until stdin closes. Everything connector code may need is imported before
isolation: after it, the worker cannot read the Python installation.

Argv: ``MEMORY`` = bytes the connector may allocate above the baseline
(``RLIMIT_AS``); ``CPU`` = lifetime CPU budget in seconds (``RLIMIT_CPU``); ``UID`` =
the unprivileged uid to run under when started as root (optional, default 65534);
``NICE`` = ``<nice>,<autogroup nice>`` to lower itself to before isolation (optional:
:func:`bollard.sandbox.priority.lower_self`, never raises itself).
"""

from __future__ import annotations

# Modules the allowed modules import lazily, inside functions: after isolation the
# worker cannot read the Python installation, so they are imported now.
import _strptime  # noqa: F401  (time.strptime, datetime.strptime)
import codecs
import copy  # noqa: F401  (collections.UserDict.copy)
import decimal
import gc
import heapq  # noqa: F401  (collections.Counter.most_common)
import os
import sys
import unicodedata  # noqa: F401  (urllib.parse netloc checks, re's \N{...})
import warnings  # noqa: F401  (re, hashlib deprecation paths)
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import isolation
from .ctx import ConnectorOutput, Context, Files, Http, Printer, Secrets
from .errors import ConnectorCompileError, HttpRequestRefused, truncate
from .frames import (
    HEADER,
    ProtocolError,
    decode_payload,
    dumps,
    encode_raw_frame,
    frame_head,
    plain_json,
    read_frame_header,
    utf8,
)
from .guards import defined_by_connector
from .policy import (
    TEST_ENTRYPOINTS,
    CompiledConnector,
    compile_connector,
    make_globals,
)
from .priority import Priority, lower_self
from .protocol import parse_http_error

# Codecs are looked up (and their modules imported) on first use: do it now.
PRELOADED_CODECS = (
    "utf-8",
    "utf-8-sig",
    "ascii",
    "latin-1",
    "idna",
    "punycode",
    "utf-16",
    "utf-16-le",
    "utf-16-be",
    "utf-32",
    "cp1252",
    "iso8859-15",
)
for _codec in PRELOADED_CODECS:
    codecs.lookup(_codec)

MAX_HOST_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_READ = 1024 * 1024  # most bytes asked of one read(2)
READ_FD, WRITE_FD = 0, 1


class Channel:
    """Blocking frames (:mod:`bollard.sandbox.frames`) over the worker's stdin/stdout."""

    def __init__(self, read_fd: int = READ_FD, write_fd: int = WRITE_FD) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = bytearray()

    def _fill(self, size: int) -> None:
        # Reads whatever the pipe holds (a header arrives with its message), so most
        # messages cost one read(2).
        buffer = self._buffer
        while len(buffer) < size:
            chunk = os.read(self.read_fd, min(max(size - len(buffer), 65536), MAX_READ))
            if not chunk:
                raise EOFError
            buffer += chunk

    def recv(self) -> tuple[dict[str, Any], bytes]:
        """The next host message and its body part; ``EOFError`` when the host closed
        the pipe."""
        self._fill(HEADER.size)
        size, body_size = read_frame_header(self._buffer, MAX_HOST_MESSAGE_BYTES)
        middle = HEADER.size + size
        end = middle + body_size
        self._fill(end)
        buffer = self._buffer
        message = decode_payload(bytes(memoryview(buffer)[HEADER.size : middle]))
        body = bytes(memoryview(buffer)[middle:end]) if body_size else b""
        del buffer[:end]
        return message, body

    def send_bytes(self, frame: bytes, body: bytes = b"") -> None:
        """Write a frame (``frame``, then ``body``): one ``writev(2)`` unless the pipe
        is full."""
        if body:
            written = os.writev(self.write_fd, (frame, body))
            if written >= len(frame):
                self._write_all(memoryview(body)[written - len(frame) :])
                return
            self._write_all(memoryview(frame)[written:])
            self._write_all(memoryview(body))
        else:
            self._write_all(memoryview(frame))

    def _write_all(self, view: memoryview) -> None:
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def send(self, message: dict[str, Any], body: bytes = b"") -> None:
        self.send_bytes(frame_head(message, len(body)), body)


def _connector_line(tb: TracebackType | None, filename: str) -> int | None:
    """The innermost line of the connector file in a traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    """The message of a connector exception: its text for ``Exception`` and classes the
    connector defined, ``TypeName: text`` for Python's own exception types."""
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 - str() runs connector-controlled code paths
        text = ""
    kind = type(exc)
    if kind is Exception or defined_by_connector(kind):
        return truncate(text or kind.__name__)
    return truncate(f"{kind.__name__}: {text}" if text else kind.__name__)


class Worker:
    """One connector, many executions."""

    def __init__(self, channel: Channel, compiled: CompiledConnector) -> None:
        self.channel = channel
        self.compiled = compiled
        self.broken = False

    def _transport(self, message: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        try:
            self.channel.send(message, body)
            reply, body = self.channel.recv()
        except BaseException:
            # Failing between request and answer (a RecursionError or MemoryError in
            # this code) leaves the pipe out of step: the worker must not run again.
            self.broken = True
            raise
        expected = "file_reference" if message["type"] in ("file_store", "file_download") else "http_response"
        if reply["type"] == expected:
            return reply, body
        if reply["type"] == "http_error":
            raise parse_http_error(reply)
        raise ProtocolError(f"unexpected {reply['type']!r} message during a request")

    def _entrypoint(self, namespace: dict[str, Any], entrypoint: str) -> Callable[[Context], Any] | None:
        names = TEST_ENTRYPOINTS if entrypoint == "test_connection" else (entrypoint,)
        for name in names:
            function: object = namespace.get(name)
            if callable(function):
                return function
        return None

    def _run(self, message: dict[str, Any], log: ConnectorOutput) -> tuple[str, dict[str, Any]]:
        """Run one execution; returns ``("result", {...})`` or ``("error", {...})``.

        Everything the connector's code can set off after it returns (generators'
        ``finally`` blocks and ``close()``, finalisers, garbage collection of its
        cycles) runs here, under the CPU timer and before the answer is sent, so inside
        the execution's CPU and wall time limits (DESIGN §4.4): the connector's objects
        are gone once this returns, and nothing of one execution runs in the next."""
        secrets = {str(k): str(v) for k, v in dict(message["secrets"]).items()}
        namespace = make_globals(lambda _getattr=None: Printer(log), self.compiled.filename)
        decimal.setcontext(decimal.Context())  # nothing a previous run did to it carries over
        isolation.start_cpu_timer(int(message["cpu_time_ms"]))
        try:
            return self._call(message, log, Secrets(secrets), namespace)
        finally:
            secrets.clear()
            # Break function <-> globals cycles and collect the rest while the timer
            # runs: a generator left suspended in a global, a cycle or a saved
            # traceback runs its finally block now, not after the limits are off.
            try:
                namespace.clear()
                gc.collect()
            finally:
                isolation.stop_cpu_timer()

    def _call(
        self, message: dict[str, Any], log: ConnectorOutput, secrets: Secrets, namespace: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The connector's module code and entrypoint, in ``namespace``; the answer holds
        only strings, so the connector's objects die with this frame."""
        ctx = Context(
            operation=str(message["operation"]),
            params=message["params"],
            secrets=secrets,
            http=Http(self._transport),
            log=log,
            files=Files(self._transport) if message.get("files") else None,
        )
        try:
            exec(self.compiled.code, namespace)
            function = self._entrypoint(namespace, str(message["entrypoint"]))
            if function is None:
                return "error", {
                    "kind": "missing_entrypoint",
                    "message": f"the connector does not define {message['entrypoint']}(ctx)",
                }
            value = function(ctx)
            try:
                text = dumps(plain_json(value, "result"))
            except (TypeError, ValueError) as exc:
                return "error", {"kind": "not_json", "message": truncate(str(exc))}
            if len(utf8(text)) > int(message["max_result_bytes"]):
                return "error", {
                    "kind": "result_too_large",
                    "message": f"the result is larger than {message['max_result_bytes']} bytes",
                }
            return "result", {"value_json": text}
        except MemoryError:
            return "error", {"kind": "memory", "message": "memory limit exceeded"}
        except HttpRequestRefused as exc:
            return "error", {
                "kind": "http",
                "code": exc.code,
                "message": truncate(str(exc)),
                "line": _connector_line(exc.__traceback__, self.compiled.filename),
            }
        except BaseException as exc:  # noqa: BLE001 - SystemExit etc. must not escape
            return "error", {
                "kind": "connector",
                "message": _describe(exc),
                "line": _connector_line(exc.__traceback__, self.compiled.filename),
            }

    def execute(self, message: dict[str, Any]) -> None:
        """Run an ``execute`` message and send its ``result`` or ``error``."""
        log = ConnectorOutput(int(message["max_log_bytes"]))
        try:
            kind, payload = self._run(message, log)
        except MemoryError:
            kind, payload = "error", {"kind": "memory", "message": "memory limit exceeded"}
        logs = log.finish()
        discard = "true" if self.broken else "false"  # asks the host not to reuse us
        if kind == "result":
            self.channel.send_bytes(
                encode_raw_frame(
                    f'{{"type":"result","discard":{discard},"logs":'
                    + dumps(logs)
                    + ',"value":'
                    + payload["value_json"]
                    + "}"
                )
            )
        else:
            payload.setdefault("line", None)
            self.channel.send({"type": "error", "discard": self.broken, "logs": logs, **payload})


def main(argv: list[str]) -> int:
    """Worker entry point; returns the exit status."""
    memory_bytes, cpu_budget_s = int(argv[0]), int(argv[1])
    uid = int(argv[2]) if len(argv) > 2 else isolation.UNPRIVILEGED_ID
    if len(argv) > 3:
        lower_self(Priority.parse(argv[3]))  # before isolation: seccomp then refuses setpriority
    channel = Channel()
    # Opened before isolation (Landlock then denies every open): once isolated, the
    # worker's stderr goes nowhere, so escaped code cannot write to the host's logs.
    null = os.open(os.devnull, os.O_WRONLY)
    layers = isolation.isolate(
        memory_bytes=memory_bytes, cpu_budget_s=cpu_budget_s, keep_fds=(0, 1, 2, null), uid=uid
    )
    os.dup2(null, 2)
    os.close(null)
    channel.send({"type": "ready", "layers": layers, "pid": os.getpid()})
    try:
        load, _ = channel.recv()
        if load["type"] != "load":
            return 2
        try:
            compiled = compile_connector(str(load["source"]), str(load.get("filename") or "connector.py"))
        except ConnectorCompileError as exc:
            channel.send({"type": "loaded", "ok": False, "errors": exc.errors})
            return 0
        worker = Worker(channel, compiled)
        # Everything alive now (the interpreter's imports, the compiled connector) lives as
        # long as the worker: move it out of the collector's reach, so the gc.collect()
        # after each execution walks only what that execution made (a full collection
        # over the imports was a third of a no-I/O execution's CPU; issue 15).
        gc.collect()
        gc.freeze()
        channel.send({"type": "loaded", "ok": True, "errors": []})
        while True:
            message, _ = channel.recv()
            if message["type"] != "execute":
                return 2
            worker.execute(message)
            if worker.broken:
                return 0
    except EOFError:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
