"""The manifest's cross-field rules (DESIGN §2): what one Pydantic field cannot check alone.

:func:`cross_field_rules` runs one small function per rule family, in a fixed order, so
errors and warnings are always listed the same way: authentication (``supportedAuthMethods``,
``oauth2Config``), ``secretBindings``, ``allowedHosts``, the integration type (``sql`` vs
``rest_api``), the operations (names, parameter schemas, SQL placeholders) and
``capabilities.syncFrequency``. Each issue names its field path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from bollard.platform.manifest.issues import ManifestIssue, format_path
from bollard.platform.manifest.models import Manifest, Operation

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SLUG_MAX = 64
OPERATION_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SECRET_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

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


def slug_error(slug: str) -> str | None:
    """DESIGN §2: the slug is the folder name, ``^[a-z0-9][a-z0-9_-]*$``, at most 64 chars."""
    if len(slug) > SLUG_MAX:
        return f"folder name '{slug[:80]}' is longer than {SLUG_MAX} characters"
    if not SLUG_RE.fullmatch(slug):  # `$` alone would accept a trailing newline
        return (
            f"folder name '{slug}' is not a valid slug: use lower-case letters, digits, "
            "'-' and '_', starting with a letter or digit"
        )
    return None


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


def _meta_format_checker() -> jsonschema.FormatChecker:
    """The meta-schema's format checks without ``regex``: that one compiles with Python's
    ``re``; patterns are checked with RE2 instead (:func:`_pattern_issues`)."""
    base = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers = {k: v for k, v in base.checkers.items() if k != "regex"}
    return checker


_META_FORMATS = _meta_format_checker()


def _pattern_issues(path: str, schema: dict[str, Any]) -> list[ManifestIssue]:
    """DESIGN §2: ``pattern`` runs on RE2, so a pattern RE2 cannot compile is a load error;
    ``unevaluatedProperties`` next to ``patternProperties`` is refused because jsonschema
    matches those keys with Python's backtracking ``re`` there (issue 9, item 18)."""
    from bollard.platform.patterns import pattern_error, schema_patterns, uses_keyword

    issues: list[ManifestIssue] = []
    for sub, pattern in schema_patterns(schema, []):
        problem = pattern_error(pattern)
        if problem:
            issues.append(ManifestIssue(f"{path}.{sub}", problem))
    if uses_keyword(schema, "patternProperties") and uses_keyword(schema, "unevaluatedProperties"):
        issues.append(
            ManifestIssue(
                path,
                "unevaluatedProperties cannot be combined with patternProperties (their matching would not "
                "run on the linear-time engine); use additionalProperties instead",
            )
        )
    return issues


def check_parameters_schema(path: str, schema: dict[str, Any]) -> list[ManifestIssue]:
    """An operation's ``parametersSchema`` at ``path``: a valid JSON Schema (draft 2020-12)
    of ``type: object`` whose ``required`` names only declared properties and whose
    patterns RE2 compiles."""
    issues: list[ManifestIssue] = []
    try:
        jsonschema.Draft202012Validator.check_schema(schema, format_checker=_META_FORMATS)
    except jsonschema.SchemaError as e:
        sub = format_path(list(e.absolute_path))
        full = f"{path}.{sub}" if sub else path
        issues.append(ManifestIssue(full, f"not a valid JSON Schema: {e.message}"))
        return issues
    issues += _pattern_issues(path, schema)
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


@dataclass
class _Findings:
    """Errors and warnings collected by the rule functions, in the order they are found."""

    errors: list[ManifestIssue] = field(default_factory=list)
    warnings: list[ManifestIssue] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(ManifestIssue(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(ManifestIssue(path, message))


def cross_field_rules(
    m: Manifest, has_connector: bool | None
) -> tuple[list[ManifestIssue], list[ManifestIssue]]:
    """Cross-field rules of DESIGN §2. Returns ``(errors, warnings)``.

    ``has_connector``: whether the folder holds a ``connector.py`` (``None``: not known,
    the rule that a ``rest_api`` integration needs one is skipped).
    """
    found = _Findings()
    _auth_rules(m, found)
    _secret_binding_rules(m, found)
    _allowed_host_rules(m, found)
    _type_rules(m, has_connector, found)
    _operation_rules(m, found)
    _capability_rules(m, found)
    return found.errors, found.warnings


def _auth_rules(m: Manifest, found: _Findings) -> None:
    """``supportedAuthMethods`` contains ``authMethod``; ``oauth2`` needs ``oauth2Config``
    whose URLs are absolute https URLs without user-info."""
    if m.supported_auth_methods is not None and m.auth_method not in m.supported_auth_methods:
        found.error(
            "supportedAuthMethods",
            f"must contain authMethod '{m.auth_method}' (add it, or change authMethod)",
        )
    if m.auth_method == "oauth2" and m.oauth2_config is None:
        found.error("oauth2Config", "is required when authMethod is 'oauth2' (authorizationUrl, tokenUrl)")
    if m.oauth2_config is None:
        return
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
            found.error(
                f"oauth2Config.{key}", f"must be an absolute https:// URL without user-info, got {url!r}"
            )


def _secret_binding_rules(m: Manifest, found: _Findings) -> None:
    """Each ``secretBindings`` key is a valid key name and listed once."""
    seen_keys: set[str] = set()
    for i, key in enumerate(m.secret_bindings):
        if not SECRET_KEY_RE.match(key):
            found.error(f"secretBindings[{i}]", f"'{key}' is not a valid key name (letters, digits, _ . -)")
        if key in seen_keys:
            found.error(f"secretBindings[{i}]", f"'{key}' is listed twice")
        seen_keys.add(key)


def _allowed_host_rules(m: Manifest, found: _Findings) -> None:
    """Each ``allowedHosts`` entry follows the egress grammar (DESIGN §4)."""
    from bollard.platform.egress.hosts import validate_allowed_host_entry

    for i, entry in enumerate(m.allowed_hosts):
        problem = validate_allowed_host_entry(entry)
        if problem:
            found.error(f"allowedHosts[{i}]", problem)


def _type_rules(m: Manifest, has_connector: bool | None, found: _Findings) -> None:
    """``sql`` needs ``sqlConnectionConfig`` and an operation; ``rest_api`` needs a connector
    and none of the SQL fields."""
    if m.type == "sql":
        if m.sql_connection_config is None:
            found.error("sqlConnectionConfig", "is required when type is 'sql' (engine, security, …)")
        if not m.all_operations:
            found.error("sqlOperations", "a SQL integration needs at least one operation with a query")
        if m.allowed_hosts:
            found.warn("allowedHosts", "is ignored for SQL integrations (they make no HTTP requests)")
        return
    if m.sql_connection_config is not None:
        found.error("sqlConnectionConfig", "is only for type 'sql'; remove it or set type to 'sql'")
    if m.sql_operations:
        found.error("sqlOperations", "is only for type 'sql'; remove it or set type to 'sql'")
    if has_connector is False:
        found.error(
            "connector.py",
            "a rest_api integration needs a connector.py (or Tale's connector.ts / connector.js) "
            "next to config.json",
        )


def _operation_rules(m: Manifest, found: _Findings) -> None:
    """Every operation of ``operations`` then ``sqlOperations``: unique names (one
    namespace for both lists), recommended spelling, parameter schema, query."""
    names: dict[str, str] = {}
    for group, ops in (("operations", m.operations), ("sqlOperations", m.sql_operations)):
        for i, op in enumerate(ops):
            p = f"{group}[{i}]"
            if op.name in names:
                found.error(f"{p}.name", f"'{op.name}' is already used by {names[op.name]}")
            else:
                names[op.name] = p
            if not OPERATION_NAME_RE.match(op.name):
                found.warn(f"{p}.name", f"'{op.name}' does not match ^[a-z][a-z0-9_]*$ (recommended)")
            if op.parameters_schema is not None:
                found.errors.extend(check_parameters_schema(f"{p}.parametersSchema", op.parameters_schema))
            _query_rules(m, p, op, found)


def _query_rules(m: Manifest, p: str, op: Operation, found: _Findings) -> None:
    """A SQL operation has a query whose ``@name`` placeholders are all declared (unused
    parameters warn); a REST operation has no query."""
    from bollard.platform.sql.placeholders import find_placeholders

    if m.type != "sql":
        if op.query is not None:
            found.error(
                f"{p}.query",
                "is only for SQL integrations (type 'sql'); a REST operation runs connector.py",
            )
        return
    if op.query is None:
        found.error(f"{p}.query", "is required: every operation of a SQL integration runs a query")
        return
    declared = set((op.parameters_schema or {}).get("properties", {}) or {})
    used = find_placeholders(
        op.query, engine=m.sql_connection_config.engine if m.sql_connection_config else None
    )
    for name in used:
        if name not in declared:
            found.error(f"{p}.query", f"placeholder @{name} is not declared in parametersSchema.properties")
    for name in sorted(declared - set(used)):
        found.warn(f"{p}.parametersSchema.properties.{name}", "is declared but not used in the query")


def _capability_rules(m: Manifest, found: _Findings) -> None:
    """``capabilities.syncFrequency`` is a 5-field cron and needs ``canSync: true``."""
    if m.capabilities is None or m.capabilities.sync_frequency is None:
        return
    problem = cron_error(m.capabilities.sync_frequency)
    if problem:
        found.error("capabilities.syncFrequency", problem)
    if not m.capabilities.can_sync:
        found.error("capabilities.syncFrequency", "needs capabilities.canSync: true")
