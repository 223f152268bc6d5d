"""Host side of one sandbox worker process: start, greeting, load, messages, kill
(DESIGN §4.2).

:func:`start_worker` starts ``python -I -B -m bollard.sandbox.worker`` in its own
session with an empty environment and two pipes (its stdin and stdout), wrapped in a
:class:`~bollard.sandbox.pipe.WorkerPipe`. :class:`WorkerProcess` decodes and checks
what the worker sends (every message is hostile, :mod:`bollard.sandbox.protocol`),
reads its greeting (:meth:`WorkerProcess.handshake`), hands it the connector
(:meth:`WorkerProcess.load`) and kills its process group with SIGKILL. Scheduling,
reuse and retirement of workers are the pool's (:mod:`bollard.sandbox.pool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from typing import Any

from .errors import ConnectorCompileError, SandboxUnavailable, truncate
from .frames import ProtocolError, decode_payload, encode_frame
from .limits import MIB, Limits
from .pipe import WorkerPipe
from .priority import Priority

WORKER_MODULE = "bollard.sandbox.worker"
MAX_HANDSHAKE_BYTES = 1 * MIB
# Payloads above this are parsed in a thread, in pure Python so the loop keeps the GIL's
# turns (C's parser holds it: ~13 ms for 256 KiB of ``{}``; hardening issue item 3).
OFFLOAD_BYTES = 256 * 1024


class WorkerProcess:
    """One worker process and its pipe, started for ``memory_bytes`` and
    ``cpu_time_ms`` (it serves only executions with those limits) under ``uid`` (when
    the host is root; the pool hands each live worker its own); ``executions``
    counts the executions it ran, ``idle_timer`` is the pool's idle-stop timer."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        pipe: WorkerPipe,
        memory_bytes: int,
        cpu_time_ms: int,
        uid: int,
    ) -> None:
        self.process = process
        self.uid = uid
        self.pipe = pipe
        self.memory_bytes = memory_bytes
        self.cpu_time_ms = cpu_time_ms
        self.executions = 0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.killed = False

    @property
    def alive(self) -> bool:
        return not self.killed and self.process.returncode is None

    async def send(self, message: dict[str, Any]) -> None:
        """Send a body-less message and wait until the pipe has taken it."""
        self.pipe.write(encode_frame(message))
        await self.pipe.drain()

    async def recv(self, max_bytes: int) -> tuple[dict[str, Any], bytes]:
        """The next message and its body part (only ``http`` and ``file_store`` messages have one).
        ``ProtocolError`` for a malformed or oversized frame, ``ConnectionError`` when
        the worker is gone."""
        payload, body = await self.pipe.recv(max_bytes)
        if len(payload) > OFFLOAD_BYTES:  # parse a big result off the event loop
            message = await asyncio.to_thread(decode_payload, payload, yielding=True)
        else:
            message = decode_payload(payload)
        if body and message["type"] not in ("http", "file_store"):
            raise ProtocolError(f"a {message['type']!r} message has no body part")
        return message, body

    async def handshake(self) -> dict[str, bool | str]:
        """Read the worker's ``ready`` greeting; returns the isolation layers it reports
        (:func:`bollard.sandbox.isolation.isolate`). :class:`SandboxUnavailable` when the
        worker dies first or greets wrongly."""
        try:
            ready, _ = await self.recv(MAX_HANDSHAKE_BYTES)
        except (ConnectionError, ProtocolError):
            code = await self.process.wait()
            raise SandboxUnavailable(f"the sandbox worker failed to start (exit status {code})") from None
        layers = ready.get("layers")
        if (
            ready["type"] != "ready"
            or type(layers) is not dict
            or not all(type(v) in (bool, str) for v in layers.values())
        ):
            raise SandboxUnavailable("the sandbox worker sent an invalid greeting")
        checked: dict[str, bool | str] = layers
        return checked

    async def load(self, source: str, filename: str) -> None:
        """Hand the worker its connector and wait for ``loaded``. Raises
        :class:`ConnectorCompileError` with the worker's messages (at most 100) when the
        source fails the compile policy there, :class:`SandboxUnavailable` for an invalid
        answer, ``ConnectionError``/``ProtocolError`` as :meth:`recv`."""
        await self.send({"type": "load", "source": source, "filename": filename})
        loaded, _ = await self.recv(MAX_HANDSHAKE_BYTES)
        errors = loaded.get("errors")
        if loaded["type"] != "loaded" or type(errors) is not list:
            raise SandboxUnavailable("the sandbox worker sent an invalid load answer")
        if loaded.get("ok") is not True:
            raise ConnectorCompileError([truncate(str(e)) for e in errors[:100]])

    def kill(self) -> None:
        """SIGKILL the worker's process group (once) and stop its idle timer."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.killed:
            return
        self.killed = True
        # Its own session (start_new_session), so the group is the worker alone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def reap(self) -> None:
        """Wait for the process to exit, then close the pipe."""
        try:
            await self.process.wait()
        finally:
            self.pipe.close()


async def start_worker(
    python: str,
    limits: Limits,
    max_executions: int,
    uid: int,
    module: str = WORKER_MODULE,
    extra_args: tuple[str, ...] = (),
    priority: Priority | None = None,
) -> WorkerProcess:
    """Start a worker with interpreter ``python`` (``-m module``, then ``extra_args``: the
    Deno launcher's binary), to run under ``uid`` at ``priority`` or the host's, whichever
    is lower (the worker lowers itself before isolation:
    :func:`bollard.sandbox.priority.lower_self`), for executions under ``limits``
    (``RLIMIT_AS`` from ``memory_bytes``; a lifetime ``RLIMIT_CPU`` for
    ``max_executions`` executions of ``cpu_time_ms``). :class:`SandboxUnavailable` when
    the process cannot be started."""
    # Lifetime CPU budget (RLIMIT_CPU), a backstop: each execution has its own
    # precise CPU timer, and the wall-time kill bounds everything.
    budget_s = math.ceil(limits.cpu_time_ms / 1000 * max_executions * 1.1) + 5
    # Two pipes: the worker's stdin and stdout. The host's ends are close-on-exec
    # (os.pipe), so no other worker inherits them.
    worker_stdin, host_writes = os.pipe()
    host_reads, worker_stdout = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            python,
            "-I",
            "-B",
            "-m",
            module,
            str(limits.memory_bytes),
            str(budget_s),
            str(uid),
            (priority or Priority(0, 0)).arg(),
            *extra_args,
            stdin=worker_stdin,
            stdout=worker_stdout,
            env={},
            cwd="/",
            start_new_session=True,
        )
    except OSError as exc:
        for fd in (host_reads, host_writes):
            os.close(fd)
        raise SandboxUnavailable(f"cannot start a sandbox worker: {exc}") from None
    except BaseException:
        for fd in (host_reads, host_writes):
            os.close(fd)
        raise
    finally:
        os.close(worker_stdin)
        os.close(worker_stdout)
    pipe = WorkerPipe(host_reads, host_writes)
    return WorkerProcess(process, pipe, limits.memory_bytes, limits.cpu_time_ms, uid)
