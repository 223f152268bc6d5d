"""Host side of the sandbox: a pool of worker processes (DESIGN §4).

:class:`SandboxPool` runs connector code in worker processes
(:mod:`bollard.sandbox.worker`), one group of workers per integration version
(``key``). Workers are started lazily, reused while idle, stopped after
``idle_timeout_s`` or ``max_executions_per_worker`` executions, and killed (SIGKILL)
and replaced past a limit or on a crash. Network I/O never happens in a worker: each
``ctx.http`` call arrives here as an ``http`` message and is answered by awaiting
the host's ``http_handler`` (the egress policy lives in the platform).

Every message from a worker is treated as hostile (:mod:`bollard.sandbox.protocol`):
capped size, exact types; a malformed one gets the worker killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bollard.sandbox.errors import (
    ConnectorCompileError,
    ConnectorError,
    ExecutionTimeout,
    HttpRequestRefused,
    LimitExceeded,
    SandboxError,
    SandboxUnavailable,
    truncate,
)
from bollard.sandbox.limits import DEFAULT_LIMITS, MIB, Limits
from bollard.sandbox.policy import CompiledConnector, compile_connector
from bollard.sandbox.protocol import (
    HEADER,
    MAX_REQUEST_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    ProtocolError,
    WorkerFailure,
    decode_payload,
    encode_frame,
    frame_head,
    http_error_message,
    http_response_message,
    parse_error,
    parse_http_request,
    parse_result,
    plain_json,
    read_frame_header,
)

logger = logging.getLogger("bollard.sandbox")

HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]
ENTRYPOINTS = ("execute", "test_connection")
WORKER_MODULE = "bollard.sandbox.worker"
MAX_HANDSHAKE_BYTES = 1 * MIB
CPU_SIGNALS = (signal.SIGPROF, signal.SIGXCPU)
OFFLOAD_BYTES = 1 * MIB  # JSON work above this size runs in a thread
_REQUEST_FAILED = {"type": "http_error", "code": "network_error", "message": "the request failed"}
READ_CHUNK = 64 * 1024  # least bytes asked of one read(2) of a worker pipe
MAX_READ_CHUNK = 1 * MIB


@dataclass(frozen=True)
class RunResult:
    """A successful execution: ``value`` (plain JSON), ``logs`` (print/ctx.log lines),
    ``http_requests`` (number of ``ctx.http`` calls), ``duration_ms`` (wall time of
    the whole call, including any wait for a worker)."""

    value: Any
    logs: list[str]
    http_requests: int
    duration_ms: float


@dataclass
class _Outcome:
    value: Any = None
    logs: list[str] = field(default_factory=list)
    http_requests: int = 0
    error: SandboxError | None = None
    reusable: bool = False


class _Pipe:
    """The host's ends of a worker's two pipes, non-blocking and driven by the event
    loop's reader and writer callbacks (no transports, no stream objects).

    The read end stays registered with the loop (no ``epoll_ctl`` per message) and
    each callback reads what the pipe holds into one buffer, so a message usually
    costs one ``read(2)``. A worker sends one message, then waits for the answer; when
    no :meth:`recv` waits and more than :data:`READ_CHUNK` bytes are buffered, the
    host stops reading until the next :meth:`recv`, so a worker cannot make it buffer
    more than one capped frame and a chunk. A write goes out at once (one ``write(2)``
    or ``writev(2)``); what the pipe cannot take is queued and flushed when it becomes
    writable.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._read_fd = read_fd
        self._write_fd = write_fd
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._buffer = bytearray()
        self._need = 0
        self._reader: asyncio.Future[None] | None = None
        self._read_error: ConnectionError | None = None
        self._queue: list[memoryview] = []
        self._drained: asyncio.Future[None] | None = None
        self._write_error: BrokenPipeError | None = None
        self.closed = False
        self._loop.add_reader(read_fd, self._readable)
        self._reading = True

    # --- reading ------------------------------------------------------------------------

    async def recv(self, max_bytes: int) -> tuple[bytes, bytes]:
        """The JSON and body parts of the next frame; ``ProtocolError`` past
        ``max_bytes``, ``ConnectionResetError`` at end of file."""
        buffer = self._buffer
        while True:
            have = len(buffer)
            if have >= HEADER.size:
                size, body_size = read_frame_header(buffer, max_bytes)
                middle = HEADER.size + size
                end = middle + body_size
                if have >= end:
                    # Copied out through memoryviews (one copy each); the temporary
                    # views are gone before the buffer shrinks.
                    payload = bytes(memoryview(buffer)[HEADER.size : middle])
                    body = bytes(memoryview(buffer)[middle:end]) if body_size else b""
                    del buffer[:end]
                    return payload, body
                await self._fill(end)
            else:
                await self._fill(HEADER.size)

    async def _fill(self, need: int) -> None:
        if self._read_error is not None:
            raise self._read_error
        if self.closed:
            raise ConnectionResetError("the worker pipe is closed")
        self._need = need
        self._reader = self._loop.create_future()
        if not self._reading:
            self._loop.add_reader(self._read_fd, self._readable)
            self._reading = True
        try:
            await self._reader
        finally:
            self._reader = None

    def _readable(self) -> None:
        buffer = self._buffer
        want = min(max(self._need - len(buffer), READ_CHUNK), MAX_READ_CHUNK)
        try:
            chunk = os.read(self._read_fd, want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._read_failed(ConnectionResetError(str(exc)))
            return
        if not chunk:
            self._read_failed(ConnectionResetError("the worker closed its pipe"))
            return
        buffer += chunk
        waiter = self._reader
        if waiter is None:
            if len(buffer) > READ_CHUNK:  # nobody asked: stop reading for now
                self._loop.remove_reader(self._read_fd)
                self._reading = False
        elif len(buffer) >= self._need and not waiter.done():
            waiter.set_result(None)

    def _read_failed(self, error: ConnectionError) -> None:
        self._read_error = error
        self._loop.remove_reader(self._read_fd)
        self._reading = False
        if self._reader is not None and not self._reader.done():
            self._reader.set_exception(error)

    # --- writing ------------------------------------------------------------------------

    def write(self, head: bytes, body: bytes = b"") -> None:
        """Send a frame (``head``, then ``body``) with one ``writev(2)``; never blocks.
        ``BrokenPipeError`` once the worker is gone."""
        if self._write_error is not None:
            raise self._write_error
        if self.closed:
            raise BrokenPipeError("the worker pipe is closed")
        if self._queue:
            self._queue.append(memoryview(head))
            if body:
                self._queue.append(memoryview(body))
            return
        try:
            written = os.writev(self._write_fd, (head, body))
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as exc:  # EPIPE: the worker is gone
            self._write_error = BrokenPipeError(exc.errno, exc.strerror)
            raise self._write_error from None
        if written < len(head) + len(body):
            if written < len(head):
                self._queue.append(memoryview(head)[written:])
                written = 0
            else:
                written -= len(head)
            if body:
                self._queue.append(memoryview(body)[written:])
            self._loop.add_writer(self._write_fd, self._writable)

    async def drain(self) -> None:
        """Wait until every queued byte is in the pipe."""
        if self._queue:
            self._drained = self._loop.create_future()
            try:
                await self._drained
            finally:
                self._drained = None
        if self._write_error is not None:
            raise self._write_error

    def _writable(self) -> None:
        try:
            while self._queue:
                head = self._queue[0]
                written = os.write(self._write_fd, head)
                if written < len(head):
                    self._queue[0] = head[written:]
                    return
                self._queue.pop(0)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._write_error = BrokenPipeError(exc.errno, exc.strerror)
            self._queue.clear()
        self._loop.remove_writer(self._write_fd)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def close(self) -> None:
        """Stop watching and close both ends; a pending :meth:`recv` fails."""
        if self.closed:
            return
        self.closed = True
        self._reading = False
        self._loop.remove_reader(self._read_fd)
        self._loop.remove_writer(self._write_fd)
        self._queue.clear()
        for waiter in (self._reader, self._drained):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionResetError("the worker pipe is closed"))
        os.close(self._read_fd)
        os.close(self._write_fd)


class _Worker:
    """One worker process and its pipe."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        pipe: _Pipe,
        memory_bytes: int,
        cpu_time_ms: int,
    ) -> None:
        self.process = process
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
        """The next message and its body part (only an ``http`` message has one)."""
        payload, body = await self.pipe.recv(max_bytes)
        if len(payload) > OFFLOAD_BYTES:  # parse a big result off the event loop
            message = await asyncio.to_thread(decode_payload, payload)
        else:
            message = decode_payload(payload)
        if body and message["type"] != "http":
            raise ProtocolError(f"a {message['type']!r} message has no body part")
        return message, body

    def kill(self) -> None:
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


class _Group:
    """The workers of one integration version (``key`` + source)."""

    def __init__(self, key: str, source: str, compiled: CompiledConnector, cap: int) -> None:
        self.key = key
        self.source = source
        self.compiled = compiled
        self.cap = cap
        self.slots = asyncio.Semaphore(cap)
        self.idle: list[_Worker] = []
        self.busy = 0
        self.running: set[_Worker] = set()
        self.waiting = 0
        self.retired = False


def _frame_cap(limits: Limits) -> int:
    # Biggest legitimate worker message: a result or a request body, plus the logs
    # (JSON escaping can grow control characters sixfold).
    return max(limits.max_result_bytes, MAX_REQUEST_BODY_BYTES * 4 // 3) + 6 * limits.max_log_bytes + 65536


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class SandboxPool:
    """Runs connector code in isolated worker processes.

    - ``workers_per_integration``: most workers (busy or idle) per ``key``; callers
      beyond it wait for a free one, within their wall time.
    - ``max_executions_per_worker``: a worker is stopped after this many executions.
    - ``idle_timeout_s``: an idle worker is stopped after this many seconds.
    - ``python``: the interpreter for workers (default ``sys.executable``).

    Use from one event loop; call :meth:`close` at shutdown.
    """

    def __init__(
        self,
        *,
        workers_per_integration: int = 2,
        max_executions_per_worker: int = 200,
        idle_timeout_s: float = 60.0,
        python: str | None = None,
    ) -> None:
        if workers_per_integration < 1 or max_executions_per_worker < 1 or idle_timeout_s <= 0:
            raise ValueError("pool sizes and timeouts must be positive")
        self.workers_per_integration = workers_per_integration
        self.max_executions_per_worker = max_executions_per_worker
        self.idle_timeout_s = idle_timeout_s
        self.python = python or sys.executable
        self._groups: dict[str, _Group] = {}
        self._retired: set[_Group] = set()
        self._background_tasks: set[asyncio.Task[Any]] = set()
        self._replenishing: set[asyncio.Task[Any]] = set()
        self._layers: dict[str, bool | str] = {}
        self._closed = False

    # --- public API --------------------------------------------------------------------

    async def run(
        self,
        *,
        key: str,
        source: str,
        entrypoint: str,
        operation: str,
        params: dict[str, Any],
        secrets: dict[str, str],
        http_handler: HttpHandler,
        limits: Limits = DEFAULT_LIMITS,
    ) -> RunResult:
        """Run ``entrypoint`` (``"execute"`` or ``"test_connection"``) of connector
        ``source`` once, with its own ``ctx`` (``operation``, a copy of ``params``,
        ``secrets`` of this call only) under ``limits``.

        ``key`` names the integration version, ``"<slug>:<content hash>"``; workers
        serve one key and one source only. A new source under the same key, or a new
        key with the same ``<slug>:`` prefix, retires the old workers: idle ones stop
        at once, running calls finish on theirs.

        Raises (all :class:`SandboxError`, ``code`` per DESIGN §8):
        :class:`ConnectorCompileError` (the source fails the compile policy),
        :class:`ExecutionTimeout` (``timeout``), :class:`LimitExceeded`
        (``limit_exceeded``: CPU, memory, HTTP requests, result size),
        :class:`ConnectorError` (``connector_error``), :class:`HttpRequestRefused` (an
        uncaught refusal, with the handler's code), :class:`SandboxUnavailable`.
        ``TypeError``/``ValueError`` for arguments the host got wrong.
        """
        started = time.monotonic()
        if entrypoint not in ENTRYPOINTS:
            raise ValueError(f"entrypoint must be one of {ENTRYPOINTS}")
        if type(operation) is not str or type(key) is not str:
            raise TypeError("key and operation must be str")
        if type(secrets) is not dict or any(
            type(k) is not str or type(v) is not str for k, v in secrets.items()
        ):
            raise TypeError("secrets must be a dict of str to str")
        if type(params) is not dict:
            raise TypeError("params must be a dict")
        plain_params = plain_json(params, "params")
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is closed")
        group = self._group(key, source)
        worker: _Worker | None = None
        outcome = _Outcome()
        timeout = asyncio.timeout(limits.wall_time_ms / 1000)
        try:
            async with timeout:
                worker = await self._acquire(group, limits)
                group.running.add(worker)
                outcome = await self._execute(
                    worker, entrypoint, operation, plain_params, secrets, http_handler, limits
                )
        except TimeoutError:
            if not timeout.expired():
                raise
            where = "running" if worker is not None else "waiting for a free sandbox worker"
            raise ExecutionTimeout(
                f"the execution exceeded its wall time limit of {limits.wall_time_ms} ms (while {where})"
            ) from None
        finally:
            if worker is not None:
                self._release(group, worker, outcome.reusable)
        if outcome.error is not None:
            raise outcome.error
        return RunResult(
            value=outcome.value,
            logs=outcome.logs,
            http_requests=outcome.http_requests,
            duration_ms=(time.monotonic() - started) * 1000,
        )

    def isolation_layers(self) -> dict[str, bool | str]:
        """The isolation layers the most recent worker reported (see
        :func:`bollard.sandbox.isolation.isolate`), e.g. ``{"process": True,
        "network_namespace": True, "unprivileged_uid": "65534", "seccomp": True, ...}``;
        ``{"process": True, "probed": False}`` before any worker started (see
        :meth:`probe`)."""
        return dict(self._layers) if self._layers else {"process": True, "probed": False}

    async def probe(self) -> dict[str, bool | str]:
        """Start one worker, record the layers it reports, stop it; returns them.
        Raises :class:`SandboxUnavailable` when a worker cannot start."""
        worker = await self._start_process(DEFAULT_LIMITS)
        try:
            await self._handshake(worker)
        finally:
            self._kill(worker)
        return self.isolation_layers()

    def retire(self, key: str) -> None:
        """Stop the workers of ``key`` (an integration removed or replaced): idle ones
        now, busy ones when their execution ends."""
        group = self._groups.pop(key, None)
        if group is not None:
            self._retire(group)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per key: ``{"idle": n, "busy": n, "waiting": n, "idle_pids": [...]}`` (waiting:
        callers queued for a worker at the cap)."""
        return {
            k: {
                "idle": len(g.idle),
                "busy": g.busy,
                "waiting": g.waiting,
                "idle_pids": [w.process.pid for w in g.idle],
            }
            for k, g in self._groups.items()
        }

    async def close(self) -> None:
        """Kill every worker and wait for them to exit. Running executions fail with
        ``internal_error`` (:class:`SandboxUnavailable`) when they next use their
        worker; later :meth:`run` calls fail at once."""
        self._closed = True
        for task in list(self._replenishing):
            task.cancel()
        for key in list(self._groups):
            self.retire(key)
        for group in list(self._retired):
            for worker in list(group.running):
                self._kill(worker)
        if self._background_tasks:
            await asyncio.gather(*self._background_tasks, return_exceptions=True)

    # --- groups and workers --------------------------------------------------------------

    def _group(self, key: str, source: str) -> _Group:
        group = self._groups.get(key)
        if group is not None and (group.source is source or group.source == source):
            return group
        compiled = compile_connector(source)  # raises ConnectorCompileError
        if group is not None:
            self._retire(group)
        # "<integration>:<version>" keys: a new version retires the older ones.
        integration = key.rpartition(":")[0]
        if integration:
            for other in [k for k in self._groups if k.rpartition(":")[0] == integration]:
                self.retire(other)
        group = _Group(key, source, compiled, self.workers_per_integration)
        self._groups[key] = group
        return group

    def _retire(self, group: _Group) -> None:
        group.retired = True
        while group.idle:
            self._kill(group.idle.pop())
        if group.busy or group.waiting:  # tracked until its last call ends (see close)
            self._retired.add(group)

    async def _acquire(self, group: _Group, limits: Limits) -> _Worker:
        group.waiting += 1
        try:
            await group.slots.acquire()
        finally:
            group.waiting -= 1
        group.busy += 1
        try:
            if self._closed:
                raise SandboxUnavailable("the sandbox pool was closed")
            for worker in reversed(group.idle):
                if (worker.memory_bytes, worker.cpu_time_ms) == (
                    limits.memory_bytes,
                    limits.cpu_time_ms,
                ):
                    group.idle.remove(worker)
                    if worker.idle_timer is not None:
                        worker.idle_timer.cancel()
                        worker.idle_timer = None
                    if worker.alive:
                        return worker
                    self._kill(worker)
            # No idle worker fits these limits: make room under the cap, start one.
            while group.idle and len(group.idle) + group.busy > group.cap:
                self._kill(group.idle.pop(0))
            return await self._spawn(group, limits)
        except BaseException:
            group.busy -= 1
            group.slots.release()
            raise

    def _release(self, group: _Group, worker: _Worker, reusable: bool) -> None:
        group.busy -= 1
        group.running.discard(worker)
        healthy = reusable and worker.alive and not group.retired and not self._closed
        if healthy and worker.executions < self.max_executions_per_worker:
            group.idle.append(worker)
            loop = asyncio.get_running_loop()
            worker.idle_timer = loop.call_later(self.idle_timeout_s, self._reap_idle, group, worker)
        else:
            self._kill(worker)
            if healthy:
                # Retired after its last execution: start the replacement now, so the
                # next call does not wait for a cold start.
                task = self._background(self._replenish(group, worker.memory_bytes, worker.cpu_time_ms))
                self._replenishing.add(task)
                task.add_done_callback(self._replenishing.discard)
        if group.retired and not group.busy and not group.waiting:
            self._retired.discard(group)
        group.slots.release()

    async def _replenish(self, group: _Group, memory_bytes: int, cpu_time_ms: int) -> None:
        limits = Limits(memory_bytes=memory_bytes, cpu_time_ms=cpu_time_ms)
        try:
            worker = await self._acquire(group, limits)
        except SandboxError:
            return
        self._release(group, worker, True)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)
        return task

    def _reap_idle(self, group: _Group, worker: _Worker) -> None:
        worker.idle_timer = None
        if worker in group.idle:
            group.idle.remove(worker)
            self._kill(worker)
        if not group.idle and not group.busy and self._groups.get(group.key) is group:
            del self._groups[group.key]

    def _kill(self, worker: _Worker) -> None:
        worker.kill()
        self._background(self._reap(worker))

    @staticmethod
    async def _reap(worker: _Worker) -> None:
        try:
            await worker.process.wait()
        finally:
            worker.pipe.close()

    async def _start_process(self, limits: Limits) -> _Worker:
        # Lifetime CPU budget (RLIMIT_CPU), a backstop: each execution has its own
        # precise CPU timer, and the wall-time kill bounds everything.
        budget_s = math.ceil(limits.cpu_time_ms / 1000 * self.max_executions_per_worker * 1.1) + 5
        # Two pipes: the worker's stdin and stdout. The host's ends are close-on-exec
        # (os.pipe), so no other worker inherits them.
        worker_stdin, host_writes = os.pipe()
        host_reads, worker_stdout = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                self.python,
                "-I",
                "-B",
                "-m",
                WORKER_MODULE,
                str(limits.memory_bytes),
                str(budget_s),
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
        pipe = _Pipe(host_reads, host_writes)
        return _Worker(process, pipe, limits.memory_bytes, limits.cpu_time_ms)

    async def _handshake(self, worker: _Worker) -> None:
        try:
            ready, _ = await worker.recv(MAX_HANDSHAKE_BYTES)
        except (ConnectionError, ProtocolError):
            code = await worker.process.wait()
            raise SandboxUnavailable(f"the sandbox worker failed to start (exit status {code})") from None
        layers = ready.get("layers")
        if (
            ready["type"] != "ready"
            or type(layers) is not dict
            or not all(type(v) in (bool, str) for v in layers.values())
        ):
            raise SandboxUnavailable("the sandbox worker sent an invalid greeting")
        self._layers = layers

    async def _spawn(self, group: _Group, limits: Limits) -> _Worker:
        worker = await self._start_process(limits)
        try:
            await self._handshake(worker)
            await worker.send({"type": "load", "source": group.source, "filename": group.compiled.filename})
            loaded, _ = await worker.recv(MAX_HANDSHAKE_BYTES)
            errors = loaded.get("errors")
            if loaded["type"] != "loaded" or type(errors) is not list:
                raise SandboxUnavailable("the sandbox worker sent an invalid load answer")
            if loaded.get("ok") is not True:
                raise ConnectorCompileError([truncate(str(e)) for e in errors[:100]])
        except (ConnectionError, ProtocolError):
            self._kill(worker)
            raise SandboxUnavailable("the sandbox worker failed while loading the connector") from None
        except BaseException:
            self._kill(worker)
            raise
        return worker

    # --- one execution ---------------------------------------------------------------------

    async def _execute(
        self,
        worker: _Worker,
        entrypoint: str,
        operation: str,
        params: dict[str, Any],
        secrets: dict[str, str],
        http_handler: HttpHandler,
        limits: Limits,
    ) -> _Outcome:
        """Run one execution on ``worker``. A failure the worker survives is returned
        in the outcome (the worker stays reusable); one that kills it is raised."""
        requests = 0
        codes_sent: set[str] = set()
        cap = _frame_cap(limits)
        max_log_chars = limits.max_log_bytes + 200
        try:
            await worker.send(
                {
                    "type": "execute",
                    "entrypoint": entrypoint,
                    "operation": operation,
                    "params": params,
                    "secrets": secrets,
                    "cpu_time_ms": limits.cpu_time_ms,
                    "max_result_bytes": limits.max_result_bytes,
                    "max_log_bytes": limits.max_log_bytes,
                }
            )
            while True:
                message, body = await worker.recv(cap)
                kind = message["type"]
                if kind == "http":
                    requests += 1
                    if requests > limits.max_http_requests:
                        worker.kill()
                        raise LimitExceeded(
                            "max_http_requests",
                            limits.max_http_requests,
                            f"the connector made more than {limits.max_http_requests} HTTP "
                            f"requests (limit max_http_requests = {limits.max_http_requests})",
                        )
                    request = parse_http_request(message, body)
                    reply, body = await self._http(request, http_handler, limits)
                    if reply["type"] == "http_error":
                        codes_sent.add(reply["code"])
                    # No drain: a worker that stops reading mid-answer (it failed while
                    # receiving) still gets to send its final message.
                    worker.pipe.write(frame_head(reply, len(body)), body)
                elif kind == "result":
                    value, logs = parse_result(message, max_log_chars)
                    worker.executions += 1
                    reusable = message.get("discard") is not True
                    return _Outcome(value, logs, requests, None, reusable)
                elif kind == "error":
                    worker.executions += 1
                    failure = parse_error(message, max_log_chars)
                    error = self._failure(failure, limits, codes_sent)
                    # After a MemoryError the worker's heap is suspect: replace it.
                    reusable = failure.kind != "memory" and message.get("discard") is not True
                    return _Outcome(None, failure.logs, requests, error, reusable)
                else:
                    raise ProtocolError(f"unexpected {kind!r} message")
        except ProtocolError as exc:
            worker.kill()
            raise ConnectorError(f"the sandbox worker broke the protocol ({exc})") from None
        except ConnectionError:
            raise await self._death(worker, limits) from None

    async def _death(self, worker: _Worker, limits: Limits) -> SandboxError:
        """The error for a worker that died during an execution."""
        code = await worker.process.wait()
        if self._closed:
            return SandboxUnavailable("the sandbox pool was closed")
        if code < 0 and -code in CPU_SIGNALS:
            return LimitExceeded(
                "cpu_time_ms",
                limits.cpu_time_ms,
                f"the execution exceeded its CPU time limit of {limits.cpu_time_ms} ms",
            )
        if code < 0:
            return ConnectorError(f"the connector's worker process was killed ({_signal_name(-code)})")
        return ConnectorError(f"the connector's worker process exited unexpectedly (status {code})")

    def _failure(self, failure: WorkerFailure, limits: Limits, codes_sent: set[str]) -> SandboxError:
        if failure.kind == "memory":
            return LimitExceeded(
                "memory_bytes",
                limits.memory_bytes,
                f"the execution exceeded its memory limit of {limits.memory_bytes // MIB} MiB "
                f"({limits.memory_bytes} bytes)",
                logs=failure.logs,
            )
        if failure.kind == "result_too_large":
            return LimitExceeded(
                "max_result_bytes",
                limits.max_result_bytes,
                f"the result is larger than the limit of {limits.max_result_bytes} bytes (max_result_bytes)",
                logs=failure.logs,
            )
        if failure.kind == "http" and failure.code in codes_sent:
            return HttpRequestRefused(failure.code, truncate(failure.message), logs=failure.logs)
        return ConnectorError(truncate(failure.message), line=failure.line, logs=failure.logs)

    async def _http(
        self, request: HttpRequest, handler: HttpHandler, limits: Limits
    ) -> tuple[dict[str, Any], bytes]:
        """Await the host's handler; the reply message for the worker and its body."""
        try:
            response = await handler(request)
        except HttpRequestRefused as exc:
            return http_error_message(exc), b""
        except Exception:
            logger.exception("the HTTP handler failed on a sandbox request")
            return _REQUEST_FAILED, b""
        if type(response) is not HttpResponse or type(response.body) is not bytes:
            logger.error("the HTTP handler returned %r, not an HttpResponse", type(response))
            return _REQUEST_FAILED, b""
        if len(response.body) > limits.max_response_bytes:
            return {
                "type": "http_error",
                "code": "limit_exceeded",
                "message": f"the response body is larger than the limit of "
                f"{limits.max_response_bytes} bytes (max_response_bytes)",
            }, b""
        return http_response_message(response), response.body
