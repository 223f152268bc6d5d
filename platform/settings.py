"""Operator settings, read from the environment (``BOLLARD_*``) by pydantic-settings.

DESIGN §11: integrations directory, data directory, state database URL, secret key;
DESIGN §4: operator ceilings for the sandbox limits and private egress.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    # Results handed to a model (DESIGN §9, model_results.py): characters of JSON at most;
    # a call may ask for less, never more.
    max_model_result_chars: int = Field(default=20_000, ge=200)

    def resolved_database_url(self) -> str:
        """The state database URL: ``database_url`` or SQLite at ``<data_dir>/bollard.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bollard.db').resolve()}"
