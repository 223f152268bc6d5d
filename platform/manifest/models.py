"""The manifest's Pydantic models: one model validates ``config.json`` everywhere (DESIGN §2).

Attributes are snake_case in Python and camelCase in the manifest (aliases); every model
is frozen and rejects unknown keys, except the open objects Tale leaves open
(``connectionConfig``, ``capabilities``). The cross-field rules live in
:mod:`bollard.platform.manifest.rules`; :func:`~bollard.platform.manifest.parse_manifest`
applies both.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.alias_generators import to_camel

AuthMethod = Literal["api_key", "bearer_token", "basic_auth", "oauth2", "none"]
SqlEngine = Literal["postgres", "mysql", "mssql", "sqlite"]
# Spellings people use for the same engines; normalised at load.
ENGINE_ALIASES = {"postgresql": "postgres", "pg": "postgres", "mariadb": "mysql", "sqlserver": "mssql"}

# Credential fields a SQL integration may set besides its secretBindings (DESIGN §5).
SQL_CONNECTION_KEYS = (
    "server",
    "port",
    "database",
    "username",
    "password",
    "ssl",
    "sslMode",
    "sslRootCert",
    "encrypt",
    "trustServerCertificate",
)


# Strict: a quoted "false" must not silently turn off an approval, nor "1" pass as a number.
PositiveInt = Annotated[int, Field(gt=0, strict=True)]


# Shared by every operation that declares no parameters; never mutated.
EMPTY_PARAMETERS_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class _Model(BaseModel):
    """Base: camelCase aliases as in the manifest, snake_case attributes in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class _OpenModel(_Model):
    model_config = ConfigDict(extra="allow")


class RateLimit(_Model):
    """A token bucket: ``requests`` per ``perSeconds`` (default 60 s), bursts up to ``burst``."""

    requests: PositiveInt
    per_seconds: Annotated[float, Field(gt=0)] = 60.0
    burst: PositiveInt | None = None


class OperationLimits(_Model):
    """Per-operation sandbox limit overrides (Bollard extension, DESIGN §4).

    Each is capped by the operator ceiling; ``timeoutMs`` on the operation itself sets
    the wall time.
    """

    cpu_time_ms: PositiveInt | None = None
    memory_mb: PositiveInt | None = None
    max_http_requests: PositiveInt | None = None
    max_response_bytes: PositiveInt | None = None
    max_result_bytes: PositiveInt | None = None


class Operation(_Model):
    """One named operation. For SQL manifests ``query`` holds the statement(s).

    Tale fields: name, title, description, operationType, requiresApproval,
    requiredScopes, parametersSchema (a JSON Schema object), query. Bollard
    extensions: mock, timeoutMs, rateLimit, maxConcurrency, limits.
    """

    name: Annotated[str, Field(min_length=1, max_length=128)]
    title: Annotated[str, Field(max_length=200)] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    operation_type: Literal["read", "write"] = "read"
    requires_approval: StrictBool | None = None
    required_scopes: list[str] = Field(default_factory=list)
    parameters_schema: dict[str, Any] | None = None
    query: Annotated[str, Field(min_length=1)] | None = None
    mock: Any = None
    timeout_ms: PositiveInt | None = None
    rate_limit: RateLimit | None = None
    max_concurrency: PositiveInt | None = None
    limits: OperationLimits | None = None

    @property
    def needs_approval(self) -> bool:
        """DESIGN §6: writes need approval unless ``requiresApproval: false``;
        ``requiresApproval: true`` gates a read too."""
        if self.requires_approval is not None:
            return self.requires_approval
        return self.operation_type == "write"

    @property
    def params_schema(self) -> dict[str, Any]:
        """The parameters schema, an empty object schema when none is declared."""
        return self.parameters_schema or EMPTY_PARAMETERS_SCHEMA

    @property
    def has_mock(self) -> bool:
        return "mock" in self.model_fields_set


class OAuth2Config(_Model):
    authorization_url: str
    token_url: str
    scopes: list[str] = Field(default_factory=list)


class SqlSecurity(_Model):
    max_result_rows: PositiveInt | None = None
    max_result_bytes: PositiveInt | None = None
    query_timeout_ms: PositiveInt | None = None
    max_connection_pool_size: PositiveInt | None = None


class SqlConnectionConfig(_Model):
    engine: SqlEngine
    read_only: StrictBool = False
    options: dict[str, Any] = Field(default_factory=dict)
    security: SqlSecurity = Field(default_factory=SqlSecurity)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_alias(cls, v: Any) -> Any:
        return ENGINE_ALIASES.get(v, v) if isinstance(v, str) else v


class Capabilities(_OpenModel):
    can_sync: StrictBool | None = None
    sync_frequency: str | None = None


class ConnectionConfig(_OpenModel):
    """Open object (Tale): ``timeout`` (ms), ``rateLimit``, ``apiEndpoint``, anything else."""

    timeout: PositiveInt | None = None
    rate_limit: RateLimit | None = None


class Manifest(_Model):
    """The whole ``config.json`` (DESIGN §2). Unknown top-level keys are rejected,
    except ``$schema``."""

    schema_ref: str | None = Field(default=None, alias="$schema")
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    version: Annotated[int, Field(ge=1, strict=True)] = 1
    type: Literal["rest_api", "sql"] = "rest_api"
    auth_method: AuthMethod
    supported_auth_methods: list[AuthMethod] | None = None
    secret_bindings: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    operations: list[Operation] = Field(default_factory=list)
    oauth2_config: OAuth2Config | None = Field(default=None, alias="oauth2Config")
    sql_connection_config: SqlConnectionConfig | None = None
    sql_operations: list[Operation] = Field(default_factory=list)
    connection_config: ConnectionConfig | None = None
    capabilities: Capabilities | None = None
    expose_as_capability: StrictBool | None = None
    setup_guide: Annotated[str, Field(max_length=5000)] | None = None
    metadata: dict[str, Any] | None = None

    @property
    def all_operations(self) -> list[Operation]:
        """Operations in declaration order: ``operations`` then ``sqlOperations``."""
        return [*self.operations, *self.sql_operations]

    def operation(self, name: str) -> Operation | None:
        for op in self.all_operations:
            if op.name == name:
                return op
        return None

    @property
    def credential_keys(self) -> tuple[str, ...]:
        """Every key a credential of this integration may hold (DESIGN §7)."""
        keys = list(self.secret_bindings)
        if self.type == "sql":
            keys += [k for k in SQL_CONNECTION_KEYS if k not in keys]
        if self.auth_method == "oauth2":
            keys += [k for k in ("clientId", "clientSecret", "accessToken", "refreshToken") if k not in keys]
        return tuple(keys)
