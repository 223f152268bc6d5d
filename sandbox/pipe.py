"""Host side of a worker's pipes: frames (:mod:`bollard.sandbox.frames`) over two
non-blocking pipe ends, driven by the event loop (DESIGN §4.3, §4.6).

:class:`WorkerPipe` moves bytes only: it splits the read stream into frames (JSON part
and body part, capped by :func:`~bollard.sandbox.frames.read_frame_header`) and
writes frames without blocking. Decoding and checking messages is the caller's job
(:class:`bollard.sandbox.process.WorkerProcess`).
"""

from __future__ import annotations

import asyncio
import os

from .frames import HEADER, read_frame_header
from .limits import MIB

READ_CHUNK = 64 * 1024  # least bytes asked of one read(2) of a worker pipe
MAX_READ_CHUNK = 1 * MIB


class WorkerPipe:
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
