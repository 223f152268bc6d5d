"""``bollard serve --workers N``: N server processes on one port (performance issue 15).

The supervisor (this module, the process ``bollard serve`` started) does the one-time
work before any server starts: the credential key file, the state database's
migrations, SQLite's WAL journal (readers and the writer of several processes no longer
block each other; writers wait up to the engine's 30 s busy timeout) and the first admin
token, so each happens once. Then it starts N children (``bollard serve`` with the
hidden ``--worker-of`` flag), each a complete server with its own runtime, sandbox pool
and SQL pools, sharing state through the database exactly as replicas do (DESIGN §12).
Each child binds its own listening socket with ``SO_REUSEPORT``, so the kernel spreads
connections over them; the supervisor holds the port, bound but not listening, for as
long as it runs. Rate limits, concurrency caps and events are shared through a
PostgreSQL state database (pg_ratelimit.py, pg_events.py); on SQLite they are per process.

SIGTERM or SIGINT: the supervisor sends SIGTERM to every child (uvicorn's graceful
shutdown; each stops its runtime, which kills its sandbox workers), waits up to
``STOP_GRACE_S`` and SIGKILLs what is left. A child that dies on its own is restarted
(at most once a second). Children ask the kernel for SIGTERM when the supervisor dies
(``PR_SET_PDEATHSIG``), so none is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bollard.platform.settings import Settings

STOP_GRACE_S = 20.0
_PR_SET_PDEATHSIG = 1


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with ``SO_REUSEPORT`` but not listening: it fails
    now when another program holds the port, and keeps the port for the children (the
    kernel hands connections only to listening sockets). ``OSError`` when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """A child's own listening socket on the shared port (``SO_REUSEPORT``)."""
    sock = reserve_port(host, port)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux); exit now if
    ``parent`` is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


async def prepare_state(settings: Settings) -> str | None:
    """The one-time start-up work, before any child: the key file, migrations, WAL on
    a SQLite state database, the first admin token (returned when created now)."""
    from bollard.platform import tokens
    from bollard.platform.runtime import ADMIN_TOKEN_FILE, secret_keys, write_private_file
    from bollard.platform.store.db import create_engine, migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret_keys(settings)  # creates <data_dir>/secret.key once, before the children read it
    db = create_engine(settings.resolved_database_url())
    try:
        await migrate(db)
        if db.url.get_backend_name() == "sqlite":
            async with db.connect() as conn:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # kept in the file
        if await tokens.count_tokens(db) > 0:
            return None
        token = await tokens.create_token(db, "admin", name="first admin")
        write_private_file(settings.data_dir / ADMIN_TOKEN_FILE, token + "\n")
        return token
    finally:
        await db.dispose()


class Supervisor:
    """Starts, restarts and stops the ``workers`` children of ``argv`` (a ``bollard
    serve`` command line without ``--workers``)."""

    def __init__(self, argv: list[str], workers: int) -> None:
        self.argv = argv
        self.workers = workers
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def _start(self, index: int) -> None:
        cmd = [sys.executable, "-m", "bollard.platform.cli", *self.argv, "--worker-of", str(os.getpid())]
        self.children[index] = subprocess.Popen(cmd, env={**os.environ, "BOLLARD_WORKER_INDEX": str(index)})

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status (0)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for i in range(self.workers):
            self._start(i)
        last_restart: dict[int, float] = {}
        while not self.stopping:
            time.sleep(0.2)
            for i, child in list(self.children.items()):
                if self.stopping or child.poll() is None:
                    continue
                wait = 1.0 - (time.monotonic() - last_restart.get(i, 0.0))
                if wait > 0:
                    continue
                print(f"  server process {child.pid} exited ({child.returncode}); restarting it", flush=True)
                last_restart[i] = time.monotonic()
                self._start(i)
        self._stop_children()
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def _stop_children(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_supervisor(settings: Settings, argv: list[str], workers: int) -> int:
    """``bollard serve --workers N`` (N > 1): the one-time work, then the children."""
    from bollard.platform.runtime import ADMIN_TOKEN_FILE

    try:
        reservation = reserve_port(settings.host, settings.port)
    except OSError as e:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        created = asyncio.run(prepare_state(settings))
        url = f"http://{settings.host}:{settings.port}"
        token_file = settings.data_dir / ADMIN_TOKEN_FILE
        print(f"Bollard is serving {Path(settings.integrations_dir).resolve()} at {url}", flush=True)
        print(f"  {workers} server processes on one port; API docs: {url}/docs", flush=True)
        if settings.resolved_database_url().startswith("sqlite"):
            print(
                "  Note: with a SQLite state database, rate limits, concurrency caps and events are "
                f"per process ({workers}x a limit in all); set BOLLARD_DATABASE_URL to PostgreSQL "
                "or use --workers 1 for one shared limit",
                flush=True,
            )
        if created:
            print(f"  Admin token (created now, saved to {token_file}): {created}", flush=True)
        elif token_file.exists():
            print(f"  Admin token: in {token_file} (created on the first start)", flush=True)
        return Supervisor(argv, workers).run()
    finally:
        reservation.close()
