"""The integration manifest (``config.json``): models, load rules and JSON Schema.

One Pydantic model validates the manifest everywhere (folder load, upload, CLI) and
publishes the JSON Schema editors use through ``$schema`` (DESIGN §2). The format is a
compatible superset of Tale's: every manifest of Tale's own corpus loads unchanged.

:func:`parse_manifest` is the one entry point: it normalises Tale's shapes (per-property
``"required": true``, SQL queries in ``operations[].query``), validates the model, then
applies the cross-field rules, and raises :class:`ManifestError` listing every problem
with its field path (``operations[3].parametersSchema.properties.limit.type: …``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jsonschema
from bollard.platform.errors import ValidationFailed
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SLUG_MAX = 64
OPERATION_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SECRET_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MANIFEST_MAX_BYTES = 512 * 1024

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


@dataclass(frozen=True)
class ManifestIssue:
    """One problem: ``path`` is the field path (``operations[3].name``), empty for the root."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(ValidationFailed):
    """Raised by :func:`parse_manifest`; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        super().__init__(
            "invalid_manifest", "; ".join(str(i) for i in issues), details=[str(i) for i in issues]
        )


@dataclass
class ParsedManifest:
    """A valid manifest plus its non-fatal ``warnings``."""

    manifest: Manifest
    warnings: list[ManifestIssue] = field(default_factory=list)


def format_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("operations", 3, "name")`` → ``operations[3].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# --- normalisation (Tale compatibility) -------------------------------------------


def normalize_required(schema: Any) -> Any:
    """Turn Tale's per-property ``"required": true`` into the standard ``required`` array.

    Works recursively on nested object schemas and array ``items``; a property's
    boolean ``required`` is removed (``false`` simply disappears). Returns a new
    schema; the input is not changed. 10 of Tale's 13 examples use the boolean form.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    props = out.get("properties")
    if isinstance(props, dict):
        required = list(out["required"]) if isinstance(out.get("required"), list) else []
        new_props: dict[str, Any] = {}
        for name, prop in props.items():
            if isinstance(prop, dict) and isinstance(prop.get("required"), bool):
                prop = dict(prop)
                if prop.pop("required") and name not in required:
                    required.append(name)
            new_props[name] = normalize_required(prop)
        out["properties"] = new_props
        if required:
            out["required"] = required
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = normalize_required(out[key])
    return out


def _normalize(data: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for key in ("operations", "sqlOperations"):
        ops = data.get(key)
        if isinstance(ops, list):
            for op in ops:
                if isinstance(op, dict) and isinstance(op.get("parametersSchema"), dict):
                    op["parametersSchema"] = normalize_required(op["parametersSchema"])
    return data


# --- validation ------------------------------------------------------------------

_PYDANTIC_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown key; remove it or check its spelling",
}


def _pydantic_issues(exc: ValidationError) -> list[ManifestIssue]:
    issues = []
    for err in exc.errors():
        loc = list(err["loc"])
        # Union/annotated wrappers add type names to the location; drop them.
        loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in _WRAPPERS))]
        msg = _PYDANTIC_MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "literal_error":
            msg = f"{err['msg']} (got {json.dumps(err.get('input'))[:80]})"
        issues.append(ManifestIssue(format_path(loc), msg))
    return issues


_WRAPPERS = {"function-after", "function-before", "function-wrap", "constrained-str"}
_TOP_LEVEL_KEYS = {f.alias or n for n, f in Manifest.model_fields.items()}
_UNKNOWN_KEY = "unknown top-level key; remove it (allowed: " + ", ".join(sorted(_TOP_LEVEL_KEYS)) + ")"

_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [
    {},
    {},
    {},
    {
        m: i + 1
        for i, m in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        )
    },
    {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
]


def cron_error(expr: str) -> str | None:
    """Check a standard 5-field cron expression; return an error message or ``None``."""
    fields = expr.split()
    if len(fields) != 5:
        return f"must be a 5-field cron expression (minute hour day month weekday), got {len(fields)} fields"
    names = ("minute", "hour", "day of month", "month", "day of week")
    for i, part in enumerate(fields):
        lo, hi = _CRON_RANGES[i]
        for item in part.split(","):
            base, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"{names[i]} field '{part}': step must be a positive number"
            if base == "*":
                continue
            bounds = base.split("-")
            if len(bounds) > 2:
                return f"{names[i]} field '{part}' is not valid"
            for b in bounds:
                value = _CRON_NAMES[i].get(b.upper()) if not b.isdigit() else int(b)
                if value is None or not lo <= value <= hi:
                    return f"{names[i]} field '{part}': values must be in {lo}-{hi}"
    return None


def _check_parameters_schema(path: str, schema: dict[str, Any]) -> list[ManifestIssue]:
    issues: list[ManifestIssue] = []
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        sub = format_path(list(e.absolute_path))
        full = f"{path}.{sub}" if sub else path
        issues.append(ManifestIssue(full, f"not a valid JSON Schema: {e.message}"))
        return issues
    if schema.get("type", "object") != "object":
        issues.append(ManifestIssue(f"{path}.type", 'must be "object" (parameters are named)'))
    props = schema.get("properties", {})
    for req in schema.get("required", []):
        if isinstance(props, dict) and req not in props:
            issues.append(
                ManifestIssue(
                    f"{path}.required",
                    f"'{req}' is required but not declared in properties",
                )
            )
    return issues


def _rules(m: Manifest, has_connector: bool | None) -> tuple[list[ManifestIssue], list[ManifestIssue]]:
    """Cross-field rules of DESIGN §2. Returns (errors, warnings)."""
    from bollard.platform.egress.hosts import validate_allowed_host_entry
    from bollard.platform.sql.placeholders import find_placeholders

    errors: list[ManifestIssue] = []
    warnings: list[ManifestIssue] = []
    E = lambda p, msg: errors.append(ManifestIssue(p, msg))  # noqa: E731
    W = lambda p, msg: warnings.append(ManifestIssue(p, msg))  # noqa: E731

    if m.supported_auth_methods is not None and m.auth_method not in m.supported_auth_methods:
        E(
            "supportedAuthMethods",
            f"must contain authMethod '{m.auth_method}' (add it, or change authMethod)",
        )
    if m.auth_method == "oauth2" and m.oauth2_config is None:
        E("oauth2Config", "is required when authMethod is 'oauth2' (authorizationUrl, tokenUrl)")
    if m.oauth2_config is not None:
        for key, url in (
            ("authorizationUrl", m.oauth2_config.authorization_url),
            ("tokenUrl", m.oauth2_config.token_url),
        ):
            parts = urlsplit(url)
            if (
                parts.scheme != "https"
                or not parts.hostname
                or parts.username is not None
                or parts.password is not None
            ):
                E(f"oauth2Config.{key}", f"must be an absolute https:// URL without user-info, got {url!r}")

    seen_keys: set[str] = set()
    for i, key in enumerate(m.secret_bindings):
        if not SECRET_KEY_RE.match(key):
            E(f"secretBindings[{i}]", f"'{key}' is not a valid key name (letters, digits, _ . -)")
        if key in seen_keys:
            E(f"secretBindings[{i}]", f"'{key}' is listed twice")
        seen_keys.add(key)

    for i, entry in enumerate(m.allowed_hosts):
        problem = validate_allowed_host_entry(entry)
        if problem:
            E(f"allowedHosts[{i}]", problem)

    if m.type == "sql":
        if m.sql_connection_config is None:
            E("sqlConnectionConfig", "is required when type is 'sql' (engine, security, …)")
        if not m.all_operations:
            E("sqlOperations", "a SQL integration needs at least one operation with a query")
        if m.allowed_hosts:
            W("allowedHosts", "is ignored for SQL integrations (they make no HTTP requests)")
    else:
        if m.sql_connection_config is not None:
            E("sqlConnectionConfig", "is only for type 'sql'; remove it or set type to 'sql'")
        if m.sql_operations:
            E("sqlOperations", "is only for type 'sql'; remove it or set type to 'sql'")
        if has_connector is False:
            E("connector.py", "a rest_api integration needs a connector.py next to config.json")

    names: dict[str, str] = {}
    groups = [("operations", m.operations), ("sqlOperations", m.sql_operations)]
    for group, ops in groups:
        for i, op in enumerate(ops):
            p = f"{group}[{i}]"
            if op.name in names:
                E(f"{p}.name", f"'{op.name}' is already used by {names[op.name]}")
            else:
                names[op.name] = p
            if not OPERATION_NAME_RE.match(op.name):
                W(f"{p}.name", f"'{op.name}' does not match ^[a-z][a-z0-9_]*$ (recommended)")
            if op.parameters_schema is not None:
                errors.extend(_check_parameters_schema(f"{p}.parametersSchema", op.parameters_schema))
            if m.type == "sql":
                if op.query is None:
                    E(f"{p}.query", "is required: every operation of a SQL integration runs a query")
                    continue
                declared = set((op.parameters_schema or {}).get("properties", {}) or {})
                used = find_placeholders(
                    op.query, engine=m.sql_connection_config.engine if m.sql_connection_config else None
                )
                for name in used:
                    if name not in declared:
                        E(
                            f"{p}.query",
                            f"placeholder @{name} is not declared in parametersSchema.properties",
                        )
                for name in sorted(declared - set(used)):
                    W(f"{p}.parametersSchema.properties.{name}", "is declared but not used in the query")
            elif op.query is not None:
                E(
                    f"{p}.query",
                    "is only for SQL integrations (type 'sql'); a REST operation runs connector.py",
                )

    if m.capabilities is not None and m.capabilities.sync_frequency is not None:
        problem = cron_error(m.capabilities.sync_frequency)
        if problem:
            E("capabilities.syncFrequency", problem)
        if not m.capabilities.can_sync:
            E("capabilities.syncFrequency", "needs capabilities.canSync: true")
    return errors, warnings


def parse_manifest(data: Any, *, has_connector: bool | None = None) -> ParsedManifest:
    """Validate a decoded ``config.json`` and return the model and its warnings.

    ``has_connector``: whether the folder holds a ``connector.py`` (``None`` when only
    the manifest is checked, as ``bollard validate --manifest-only`` does).

    Raises :class:`ManifestError` with every issue found, each naming its field path.
    """
    if not isinstance(data, dict):
        raise ManifestError([ManifestIssue("", "the file must hold a JSON object")])
    # Unknown top-level keys are reported and set aside, so the other fields' errors and
    # the cross-field rules are still checked and listed with them.
    known = _TOP_LEVEL_KEYS | set(Manifest.model_fields)
    unknown = [ManifestIssue(str(k), _UNKNOWN_KEY) for k in data if k not in known]
    try:
        manifest = Manifest.model_validate(_normalize({k: v for k, v in data.items() if k in known}))
    except ValidationError as exc:
        raise ManifestError(unknown + _pydantic_issues(exc)) from None
    errors, warnings = _rules(manifest, has_connector)
    if unknown or errors:
        raise ManifestError(unknown + errors)
    return ParsedManifest(manifest, warnings)


def parse_manifest_bytes(raw: bytes, *, has_connector: bool | None = None) -> ParsedManifest:
    """Decode and validate ``config.json`` bytes (≤512 KB, UTF-8 JSON).

    Raises :class:`ManifestError` for size, encoding and JSON syntax problems too.
    """
    if len(raw) > MANIFEST_MAX_BYTES:
        raise ManifestError(
            [ManifestIssue("", f"the file is {len(raw)} bytes; the limit is {MANIFEST_MAX_BYTES} bytes")]
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ManifestError([ManifestIssue("", f"the file is not UTF-8 text ({e.reason})")]) from None
    except json.JSONDecodeError as e:
        raise ManifestError(
            [ManifestIssue("", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")]
        ) from None
    return parse_manifest(data, has_connector=has_connector)


def slug_error(slug: str) -> str | None:
    """DESIGN §2: the slug is the folder name, ``^[a-z0-9][a-z0-9_-]*$``, at most 64 chars."""
    if len(slug) > SLUG_MAX:
        return f"folder name '{slug[:80]}' is longer than {SLUG_MAX} characters"
    if not SLUG_RE.match(slug):
        return (
            f"folder name '{slug}' is not a valid slug: use lower-case letters, digits, "
            "'-' and '_', starting with a letter or digit"
        )
    return None


def json_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), as served at ``/api/schema/config.json``."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://bollard.dev/schema/config.json"
    schema["title"] = "Bollard integration manifest (config.json)"
    return schema
