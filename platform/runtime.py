"""The running host: settings, state database, registry, credentials, and their lifecycle.

One :class:`Runtime` backs the HTTP API, the CLI, the agent tools and MCP; each of those
is a thin front over it and over the execution service it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform import tokens, tracing
from bollard.platform.approvals import Approvals
from bollard.platform.credentials import CredentialStore, load_or_create_key_file, split_keys
from bollard.platform.events import Event, EventBus
from bollard.platform.execution import ExecutionService
from bollard.platform.execution_log import ExecutionLog
from bollard.platform.files.store import FileStore
from bollard.platform.jobs import Job, JobQueue, JobSettings, make_job_queue
from bollard.platform.metrics import runtime_metrics
from bollard.platform.pg_events import make_event_bus
from bollard.platform.registry import IntegrationEntry, Registry
from bollard.platform.replicas import PeerEvents, local_registry_events, reloading_for_peer
from bollard.platform.settings import Settings
from bollard.platform.store.db import create_engine
from bollard.platform.store.db import migrate as migrate_db
from bollard.platform.warmup import Warmer
from bollard.platform.webhooks.service import Webhooks

if TYPE_CHECKING:
    from bollard.platform.egress import EgressClient
    from bollard.platform.egress.override import ResolveOverride
    from bollard.platform.oauth2 import OAuth2Service
    from bollard.platform.sql.service import SqlService
    from bollard.platform.upload import Installer
    from bollard.sandbox.pool import SandboxPool

log = logging.getLogger("bollard")

ADMIN_TOKEN_FILE = "admin.token"
KEY_FILE = "secret.key"


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (replacing any existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def secret_keys(settings: Settings) -> list[str]:
    """The credential encryption keys, primary first (DESIGN §7): ``BOLLARD_SECRET_KEY``
    (comma-separated during a rotation) or the key file in the data directory."""
    if settings.secret_key:
        return split_keys(settings.secret_key)
    return load_or_create_key_file(settings.data_dir / KEY_FILE)


class Runtime:
    """Owns every long-lived resource; ``await start()`` once, ``await stop()`` at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.integrations_dir)
        self.db: AsyncEngine = create_engine(settings.resolved_database_url())
        # registry, approval, credential and token events (platform/events.py); across
        # replicas over LISTEN/NOTIFY when the state database is PostgreSQL (DESIGN §12)
        self.events: EventBus = make_event_bus(self.db.url)
        self.credentials = CredentialStore(
            self.db,
            secret_keys(settings),
            cache_ttl_s=settings.cache_ttl_s,
            # a key file rewritten by `bollard rotate-key` is picked up live (DESIGN §11)
            key_file=None if settings.secret_key else settings.data_dir / KEY_FILE,
        )
        self.tokens = tokens.TokenCache(self.db, ttl_s=settings.cache_ttl_s)
        self.credentials.on_change = lambda slug, cid: self.events.publish(
            "credential", {"slug": slug, "credentialId": cid}
        )
        self.tokens.on_change = lambda token_id: self.events.publish("token", {"tokenId": token_id})
        self._stop = asyncio.Event()
        # set when the server begins to shut down (before it waits for open connections):
        # long-lived answers such as the web page's event stream end on it
        self.closing = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._http: EgressClient | None = None
        self._egress_override: ResolveOverride | None = None
        self._sql: SqlService | None = None
        self._oauth2: OAuth2Service | None = None
        self._pool: SandboxPool | None = None
        self._installer: Installer | None = None
        self._versions: dict[str, str] = {}  # slug -> content hash serving
        self._background: set[asyncio.Task[None]] = set()
        self.started = False
        self.execution_log = ExecutionLog(self.db, retention_days=settings.execution_retention_days)
        # The job outbox (platform/jobs/: pgqueuer on PostgreSQL, in process on SQLite).
        # Register handlers and sweeps (jobs.handle / jobs.every) before start().
        self.jobs: JobQueue = make_job_queue(
            self.db,
            JobSettings(
                max_attempts=settings.job_max_attempts,
                lease_s=settings.job_lease_s,
                backoff_base_s=settings.job_backoff_base_s,
                poll_s=settings.job_poll_s,
            ),
        )
        self.webhooks = Webhooks(self)  # approval notifications (platform/webhooks/)
        self.webhooks.register(self.jobs)
        self.jobs.every("executions.retention", settings.execution_sweep_interval_s, self._prune_executions)
        self.files = FileStore(  # ctx.files (DESIGN §3): <data_dir>/files + the files table
            self.db,
            settings.data_dir / "files",
            base_url=settings.public_url or f"http://{settings.host}:{settings.port}",
            retention_hours=settings.file_retention_hours,
        )
        self.jobs.every("files.retention", settings.file_sweep_interval_s, self._prune_files)
        self.approvals = Approvals(self)
        self.execution = ExecutionService(self)
        self.metrics = runtime_metrics(self)  # /metrics (platform/metrics.py)
        self.peers = PeerEvents(self)  # other replicas' events, applied here (platform/replicas.py)
        self.peers.install()
        self.warmer = Warmer(self)  # started by `bollard serve` (warmup.py)

    async def _prune_executions(self, job: Job) -> None:
        """The execution-log retention sweep (a job; ``BOLLARD_EXECUTION_RETENTION_DAYS``),
        which also prunes finished webhook deliveries and the job queue's history."""
        days = self.execution_log.retention_days
        removed = await self.execution_log.prune()
        if removed:
            log.info("execution log: removed %d records older than %d days", removed, days)
        removed = await self.webhooks.prune(timedelta(days=days))
        removed += await self.jobs.prune_history(days * 86400.0)
        if removed:
            log.info(
                "job outbox: removed %d finished deliveries and job log rows older than %d days",
                removed,
                days,
            )

    async def _prune_files(self, job: Job) -> None:
        """The file retention sweep (a job; ``BOLLARD_FILE_RETENTION_HOURS``): expired rows
        go once, whichever replica runs it, with their bytes in its data directory; other
        replicas' copies go in their own orphan sweep (``FileStore.start_orphan_sweep``)."""
        removed = await self.files.prune()
        if removed:
            log.info("file store: removed %d expired files", removed)

    def _on_registry_change(self, slug: str, entry: IntegrationEntry | None) -> None:
        """Free what an old version held: its sandbox workers and SQL pools."""
        previous = self._versions.pop(slug, None)
        current = entry.version.content_hash if entry is not None and entry.version is not None else None
        if current is not None:
            self._versions[slug] = current
        payload = {"slug": slug, "contentHash": current}
        if reloading_for_peer.get():  # another replica said so: tell this one only (no loop)
            self.events.deliver(Event("registry", payload))
        else:
            self.events.publish("registry", payload)
        if previous is None or previous == current:
            return
        if self._pool is not None:
            self._pool.retire(f"{slug}:{previous}")
        sql = self._sql
        if sql is not None and entry is None:
            task = asyncio.get_running_loop().create_task(sql.engines.invalidate(slug))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def start(self, *, watch: bool | None = None, migrate: bool = True) -> None:
        """Migrate the state database (unless ``migrate`` is false: ``serve --workers``
        migrates once before its processes start), load integrations, start the watcher."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        tracing.configure(self.settings)  # exports spans only when an OTLP endpoint is set
        if migrate:
            await migrate_db(self.db)
        self.registry.add_listener(self._on_registry_change)
        await self.events.start()
        with local_registry_events():  # every replica loads the shared folder itself
            await self.registry.load_all_async()  # off the loop; a bad folder is its load error
        if self.settings.reload if watch is None else watch:
            self._watch_task = asyncio.create_task(
                self.registry.watch(self._stop, debounce_ms=self.settings.reload_debounce_ms)
            )
        self.approvals.expiry.start_sweeper()
        # this replica's own data directory: bytes whose row the retention job deleted
        self.files.start_orphan_sweep(self.settings.file_sweep_interval_s)
        await self.jobs.install()
        self.webhooks.check_configuration()
        if self.settings.jobs_worker:
            await self.jobs.start()
        self.started = True

    async def stop(self) -> None:
        self._stop.set()
        self.closing.set()
        await self.warmer.close()
        await self.approvals.expiry.close()
        await self.jobs.stop()
        await self.webhooks.aclose()
        await self.execution_log.close()
        await self.files.close()
        await self.events.close()
        await self.execution.limiter.close()
        if self._watch_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._watch_task, 5)
        # Reverse order of dependence: the pool's workers call out through the client.
        closers: list[Callable[[], Awaitable[None]]] = []
        if self._pool is not None:
            closers.append(self._pool.close)
        if self._oauth2 is not None:
            closers.append(self._oauth2.aclose)
        if self._sql is not None:
            closers.append(self._sql.aclose)
        if self._http is not None:
            closers.append(self._http.aclose)
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
        self._pool = self._oauth2 = self._sql = self._http = None
        await self.db.dispose()
        tracing.shutdown()  # flushes the spans still batched, when exporting

    async def __aenter__(self) -> Runtime:
        """``async with Runtime(settings) as rt:`` starts it (no watcher) and stops it."""
        await self.start(watch=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # The long-lived services below are created on first use and closed by stop(); their
    # imports are lazy so CLI commands that need none of them start fast.

    @property
    def http_client(self) -> EgressClient:
        """The one shared HTTP client for connector egress (DESIGN §4.3)."""
        if self._http is None:
            from bollard.platform.egress import make_client  # lazy: httpcore
            from bollard.platform.egress.sender import default_ssl_context

            bundle = self.settings.egress_ca_bundle
            self._http = make_client(ssl_context=default_ssl_context(str(bundle) if bundle else None))
        return self._http

    @property
    def egress_override(self) -> ResolveOverride:
        """The operator's ``BOLLARD_EGRESS_RESOLVE`` (empty when unset; DESIGN §4)."""
        if self._egress_override is None:
            from bollard.platform.egress.override import ResolveOverride

            self._egress_override = ResolveOverride.parse(self.settings.egress_resolve)
        return self._egress_override

    def egress_testing_aids(self) -> dict[str, Any] | None:
        """What ``/healthz`` says about the egress testing aids, ``None`` when none is set."""
        if not self.egress_override and self.settings.egress_ca_bundle is None:
            return None
        return {
            "resolve": self.egress_override.describe(),
            "extraCaBundle": self.settings.egress_ca_bundle is not None,
        }

    @property
    def sql(self) -> SqlService:
        """The SQL service (engines per integration and credential)."""
        if self._sql is None:
            from bollard.platform.sql.service import SqlService  # lazy: SQLAlchemy, drivers

            self._sql = SqlService(self.settings)
        return self._sql

    @property
    def oauth2(self) -> OAuth2Service:
        """The OAuth2 service (authorisation flow, token refresh; DESIGN §7)."""
        if self._oauth2 is None:
            from bollard.platform.oauth2 import OAuth2Service  # lazy: authlib

            self._oauth2 = OAuth2Service(self)
        return self._oauth2

    @property
    def pool(self) -> SandboxPool:
        """The sandbox pool (worker processes per integration version)."""
        if self._pool is None:
            from bollard.sandbox.pool import SandboxPool  # lazy: the sandbox starts on first use

            s = self.settings
            self._pool = SandboxPool(
                workers_per_integration=s.workers_per_integration,
                max_executions_per_worker=s.max_executions_per_worker,
                idle_timeout_s=s.worker_idle_timeout_s,
                uid_range=(s.sandbox_uid_base, s.sandbox_uid_count),
            )
        return self._pool

    @property
    def installer(self) -> Installer:
        """Installs and uninstalls uploaded packages, one slug at a time (DESIGN §10)."""
        if self._installer is None:
            from bollard.platform.upload import Installer

            self._installer = Installer(self)
        return self._installer

    def isolation_layers(self) -> dict[str, Any]:
        """The sandbox isolation layers in force (for ``/healthz``)."""
        try:
            layers: dict[str, Any] = self.pool.isolation_layers()
        except Exception as e:  # the host keeps serving SQL and the catalog
            return {"available": False, "error": str(e)[:200]}
        return layers

    def js_isolation_layers(self) -> dict[str, Any]:
        """The layers of the TypeScript/JavaScript (Deno) workers, for ``/healthz``: those
        the latest Deno worker reported, else ``{"available": <Deno installed>, "probed":
        False}``."""
        from bollard.sandbox.js import deno_binary

        try:
            layers = self.pool.js_isolation_layers()
        except Exception as e:
            return {"available": False, "error": str(e)[:200]}
        if layers is None:
            return {"available": deno_binary() is not None, "probed": False}
        return layers

    async def ensure_admin_token(self) -> str | None:
        """On the first start with no tokens: create an admin token, store it 0600 in
        the data directory and return it (else ``None``)."""
        if await tokens.count_tokens(self.db) > 0:
            return None
        token = await tokens.create_token(self.db, "admin", name="first admin")
        write_private_file(self.settings.data_dir / ADMIN_TOKEN_FILE, token + "\n")
        return token
