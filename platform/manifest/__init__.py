"""The integration manifest (``config.json``): models, load rules and JSON Schema.

One Pydantic model validates the manifest everywhere (folder load, upload, CLI) and
publishes the JSON Schema editors use through ``$schema`` (DESIGN §2). The format is a
compatible superset of Tale's: every manifest of Tale's own corpus loads unchanged.

:func:`parse_manifest` is the one entry point: it normalises Tale's shapes (per-property
``"required": true``, SQL queries in ``operations[].query``), validates the model, then
applies the cross-field rules, and raises :class:`ManifestError` listing every problem
with its field path (``operations[3].parametersSchema.properties.limit.type: …``).

Modules: :mod:`.models` (the Pydantic models), :mod:`.issues` (issues, the error, the
parsed result), :mod:`.rules` (cross-field rules, slug and cron checks), :mod:`.parse`
(normalisation and the entry points), :mod:`.schema` (the JSON Schema export). Import
from this package; the names below are its public surface.
"""

from __future__ import annotations

from bollard.platform.manifest.issues import ManifestError, ManifestIssue, ParsedManifest, format_path
from bollard.platform.manifest.models import (
    EMPTY_PARAMETERS_SCHEMA,
    ENGINE_ALIASES,
    SQL_CONNECTION_KEYS,
    AuthMethod,
    Capabilities,
    ConnectionConfig,
    Manifest,
    OAuth2Config,
    Operation,
    OperationLimits,
    PositiveInt,
    RateLimit,
    SqlConnectionConfig,
    SqlEngine,
    SqlSecurity,
)
from bollard.platform.manifest.parse import (
    MANIFEST_MAX_BYTES,
    normalize_required,
    parse_manifest,
    parse_manifest_bytes,
)
from bollard.platform.manifest.rules import (
    OPERATION_NAME_RE,
    SECRET_KEY_RE,
    SLUG_MAX,
    SLUG_RE,
    cron_error,
    slug_error,
)
from bollard.platform.manifest.schema import json_schema

__all__ = [
    "EMPTY_PARAMETERS_SCHEMA",
    "ENGINE_ALIASES",
    "MANIFEST_MAX_BYTES",
    "OPERATION_NAME_RE",
    "SECRET_KEY_RE",
    "SLUG_MAX",
    "SLUG_RE",
    "SQL_CONNECTION_KEYS",
    "AuthMethod",
    "Capabilities",
    "ConnectionConfig",
    "Manifest",
    "ManifestError",
    "ManifestIssue",
    "OAuth2Config",
    "Operation",
    "OperationLimits",
    "ParsedManifest",
    "PositiveInt",
    "RateLimit",
    "SqlConnectionConfig",
    "SqlEngine",
    "SqlSecurity",
    "cron_error",
    "format_path",
    "json_schema",
    "normalize_required",
    "parse_manifest",
    "parse_manifest_bytes",
    "slug_error",
]
