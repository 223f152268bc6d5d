"""Operator settings, read from the environment (``BOLLARD_*``) by pydantic-settings.

DESIGN §11: integrations directory, data directory, state database URL, secret key;
DESIGN §4: operator ceilings for the sandbox limits and private egress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bollard.platform.webhooks.events import EVENT_TYPES


class WebhookEndpoint(BaseModel):
    """One operator-configured webhook endpoint (an item of ``BOLLARD_WEBHOOKS``, DESIGN §6).

    ``name``: 1-64 letters, digits, ``-`` or ``_`` (shown in deliveries); ``url``: where the
    signed events are POSTed (it must pass the webhook egress policy:
    ``BOLLARD_WEBHOOK_ALLOWED_HOSTS``); ``secret``: the HMAC-SHA256 key (at least 16
    characters; never shown); ``events``: the event types it receives (default: all of
    :data:`~bollard.platform.webhooks.events.EVENT_TYPES`).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: str = Field(min_length=1, max_length=2000)
    secret: SecretStr = Field(min_length=16)
    events: list[str] | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        return value

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events


class Settings(BaseSettings):
    """Every setting has an environment variable ``BOLLARD_<NAME>``.

    Paths are resolved against the working directory. ``database_url`` defaults to
    a SQLite file in ``data_dir``; any SQLAlchemy async URL works
    (``postgresql+asyncpg://…`` for several replicas, DESIGN §12).
    """

    model_config = SettingsConfigDict(env_prefix="BOLLARD_", extra="ignore")

    integrations_dir: Path = Path("integrations")
    data_dir: Path = Path(".bollard")
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000

    allow_private_egress: bool = False
    # Testing and staging aids for egress (DESIGN §4), operator-only: curl-style
    # "host:port=address:port,…" sends a name's requests to a local stand-in (the name is
    # still checked against allowedHosts; TLS is still for the name), and extra CA
    # certificates (PEM) egress trusts on top of the public CAs. /healthz reports both.
    egress_resolve: str | None = None
    egress_ca_bundle: Path | None = None
    # How long decrypted credentials and authenticated tokens are cached per process (s);
    # another replica's change is seen after at most this long. 0 disables the caches.
    cache_ttl_s: float = Field(default=2.0, ge=0)
    access_log: bool = False
    # The externally visible base URL (scheme://host[:port]) used to build the OAuth2
    # redirect URI; default http://{host}:{port} (DESIGN §7).
    public_url: str | None = None

    # OAuth2 (DESIGN §7): extra CA certificates (PEM) trusted for token endpoints, on top
    # of the public CAs (a corporate CA); how long an authorisation request stays valid.
    oauth2_ca_bundle: Path | None = None
    oauth2_state_ttl_s: int = Field(default=600, gt=0)

    reload: bool = True
    reload_debounce_ms: int = Field(default=150, gt=0)

    # Approvals (DESIGN §6) and the execution log.
    approval_ttl_s: int = Field(default=24 * 3600, gt=0)
    execution_retention_days: int = Field(default=30, gt=0)
    # An approval still "executing" this long after the longest possible execution was
    # interrupted by a crash; it is marked failed (never re-run).
    approval_stale_margin_s: float = Field(default=30.0, ge=0)
    approval_sweep_interval_s: float = Field(default=30.0, gt=0)
    # A replica running an approval renews its lease every third of this (s); one whose
    # lease lapsed was killed: the approval is failed ("interrupted"), never re-run (§12).
    approval_lease_s: float = Field(default=15.0, gt=0)

    # The job outbox (DESIGN §12, platform/jobs/): whether this process runs a worker, failed
    # attempts before a job is dead, the lease (s) after which a dead worker's job is taken
    # again, the retry backoff base (s), the longest sleep between looks at the queue (s).
    jobs_worker: bool = True
    job_max_attempts: int = Field(default=8, gt=0)
    job_lease_s: float = Field(default=60.0, gt=0)
    job_backoff_base_s: float = Field(default=2.0, gt=0)
    job_poll_s: float = Field(default=5.0, gt=0)
    # How often the execution-log and file retention sweeps run (s).
    execution_sweep_interval_s: float = Field(default=3600.0, gt=0)
    file_sweep_interval_s: float = Field(default=600.0, gt=0)

    # Approval notifications (DESIGN §6, platform/webhooks/): BOLLARD_WEBHOOKS is a JSON list
    # of {"name", "url", "secret", "events"?}; targets must match BOLLARD_WEBHOOK_ALLOWED_HOSTS
    # (comma-separated, the allowedHosts grammar); loopback/private addresses need
    # BOLLARD_WEBHOOK_ALLOW_PRIVATE and an entry naming the host exactly.
    webhooks: list[WebhookEndpoint] = Field(default_factory=list, repr=False)
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_allow_private: bool = False
    webhook_max_attempts: int = Field(default=10, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_backoff_base_s: float = Field(default=5.0, gt=0)
    webhook_backoff_cap_s: float = Field(default=3600.0, gt=0)
    # A receiver's Retry-After (429, 503) is honoured up to this many seconds.
    webhook_max_retry_after_s: float = Field(default=3600.0, gt=0)
    # Extra CA certificates (PEM) trusted for webhook endpoints, on top of the public CAs.
    webhook_ca_bundle: Path | None = None

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _valid_hosts(cls, value: list[str]) -> list[str]:
        from bollard.platform.egress.hosts import validate_allowed_host_entry  # no HTTP client

        for index, entry in enumerate(value):
            problem = validate_allowed_host_entry(entry)
            if problem is not None:
                raise ValueError(f"BOLLARD_WEBHOOK_ALLOWED_HOSTS[{index}]: {problem}")
        return value

    # Sandbox pool (DESIGN §4).
    workers_per_integration: int = Field(default=2, gt=0)
    max_executions_per_worker: int = Field(default=200, gt=0)
    worker_idle_timeout_s: float = Field(default=60.0, gt=0)
    # `bollard serve` starts one warm worker per (integration, credential) at load and
    # when credentials are set, at most this many (warmup.py; 0: none).
    warm_workers: int = Field(default=32, ge=0)
    # When the host runs as root each live worker runs under its own uid from
    # [base, base + count) (DESIGN §4.5); pick ids no account or container uses.
    sandbox_uid_base: int = Field(default=1_900_000_000, ge=1, le=2**32 - 3)
    sandbox_uid_count: int = Field(default=4096, gt=0)

    # Operator ceilings: a manifest may lower a limit or raise it up to these.
    max_wall_time_ms: int = Field(default=120_000, gt=0)
    max_cpu_time_ms: int = Field(default=60_000, gt=0)
    max_memory_mb: int = Field(default=1024, gt=0)
    max_http_requests: int = Field(default=500, gt=0)
    max_response_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_result_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_result_rows: int = Field(default=100_000, gt=0)
    max_query_timeout_ms: int = Field(default=300_000, gt=0)
    # SQL (DESIGN §5): PostgreSQL roles that are superusers or hold server-file, program
    # or signal roles are refused unless this is set (hardening issue item 13).
    sql_allow_privileged_roles: bool = False

    # Parameters from callers (DESIGN §8): nesting levels and bytes of JSON.
    max_param_depth: int = Field(default=32, gt=0)
    max_param_bytes: int = Field(default=256 * 1024, gt=0)

    # Observability (README "Observability"): /metrics answers admin tokens on the API port;
    # with metrics_port set it is also served without a token on metrics_host:metrics_port
    # (for a Prometheus that reaches only that port; under `serve --workers N` process i uses
    # metrics_port + i: each process counts on its own). Spans are exported over OTLP/HTTP when
    # otlp_endpoint (the collector's base URL, e.g. http://127.0.0.1:4318) or the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT is set.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    otlp_endpoint: str | None = None

    # Results handed to a model (DESIGN §9, model_results.py): characters of JSON at most;
    # a call may ask for less, never more.
    max_model_result_chars: int = Field(default=20_000, ge=200)

    # MCP at /mcp (DESIGN §9, platform/mcp/): Host and Origin values admitted besides the
    # listen address, the public URL and loopback (JSON lists; "host:*" matches any port);
    # how long one retry of a held write waits for the decision (s, at most 60).
    mcp_allowed_hosts: list[str] = Field(default_factory=list)
    mcp_allowed_origins: list[str] = Field(default_factory=list)
    mcp_approval_wait_s: float = Field(default=20.0, gt=0, le=60)

    # ctx.files (DESIGN §3): files under <data_dir>/files, metadata in the state database.
    files_enabled: bool = True
    max_file_bytes: int = Field(default=10 * 1024 * 1024, gt=0, le=10 * 1024 * 1024)
    max_files_bytes_per_execution: int = Field(default=50 * 1024 * 1024, gt=0)
    max_files_per_execution: int = Field(default=50, gt=0)
    file_retention_hours: int = Field(default=7 * 24, gt=0)

    @field_validator("egress_resolve")
    @classmethod
    def _check_egress_resolve(cls, value: str | None) -> str | None:
        from bollard.platform.egress.override import ResolveOverride  # no httpcore: hosts/addresses only

        ResolveOverride.parse(value)  # ValueError names the entry
        return value

    def resolved_database_url(self) -> str:
        """The state database URL: ``database_url`` or SQLite at ``<data_dir>/bollard.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bollard.db').resolve()}"
