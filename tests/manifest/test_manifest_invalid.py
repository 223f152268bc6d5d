"""Invalid manifests: each breaks one rule of DESIGN §2 and must fail with the field path.

Every case starts from a small valid manifest (REST or SQL), changes one thing, and
names the issue(s) ``parse_manifest`` must report: the exact field path and a fragment of
the message. ``str(issue)`` must start with ``"<path>: "`` so that people (and the CLI)
see where the problem is.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from bollard.platform.manifest import (
    MANIFEST_MAX_BYTES,
    ManifestError,
    ManifestIssue,
    parse_manifest,
    parse_manifest_bytes,
)

REST: dict[str, Any] = {
    "$schema": "https://bollard.dev/schema/config.json",
    "title": "Example",
    "description": "A small valid REST manifest.",
    "version": 1,
    "type": "rest_api",
    "authMethod": "bearer_token",
    "secretBindings": ["accessToken"],
    "allowedHosts": ["api.example.com"],
    "connectionConfig": {"timeout": 30000, "rateLimit": {"requests": 10}},
    "operations": [
        {
            "name": "list_items",
            "title": "List items",
            "operationType": "read",
            "parametersSchema": {
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "minimum": 1},
                    "query": {"type": "string"},
                },
                "required": ["limit"],
            },
        },
        {
            "name": "create_item",
            "operationType": "write",
            "parametersSchema": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
        },
    ],
}

SQL: dict[str, Any] = {
    "title": "Hotel",
    "type": "sql",
    "authMethod": "none",
    "sqlConnectionConfig": {
        "engine": "sqlite",
        "readOnly": False,
        "options": {"database": "hotel.db"},
        "security": {"maxResultRows": 100, "queryTimeoutMs": 5000, "maxConnectionPoolSize": 2},
    },
    "sqlOperations": [
        {
            "name": "get_room",
            "query": "SELECT * FROM rooms WHERE id = @id",
            "parametersSchema": {
                "type": "object",
                "properties": {"id": {"type": "integer"}},
                "required": ["id"],
            },
        }
    ],
}

DELETE = object()
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _tokens(path: str) -> list[str | int]:
    out: list[str | int] = []
    for m in _TOKEN.finditer(path):
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
    return out


def patched(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``{"a.b[0].c": value}`` set (or removed with DELETE).

    An index equal to the list's length appends.
    """
    data = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = _tokens(path)
        node: Any = data
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return data


def issues_of(data: Any, **kw: Any) -> list[ManifestIssue]:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(data, **kw)
    assert exc.value.issues, "ManifestError without issues"
    return exc.value.issues


def test_bases_are_valid() -> None:
    assert parse_manifest(REST).warnings == []
    assert parse_manifest(REST, has_connector=True).manifest.title == "Example"
    assert parse_manifest(SQL).warnings == []


LIMIT = "operations[0].parametersSchema.properties.limit"
PS = "operations[0].parametersSchema"

# (id, base, changes, [(path, message fragment), ...]) — the issues expected, no others.
CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str]]]] = [
    # title / description / version / type / authMethod
    ("title-missing", REST, {"title": DELETE}, [("title", "is required")]),
    ("title-empty", REST, {"title": ""}, [("title", "at least 1 character")]),
    ("title-too-long", REST, {"title": "x" * 201}, [("title", "at most 200 characters")]),
    ("title-not-string", REST, {"title": 5}, [("title", "valid string")]),
    ("description-too-long", REST, {"description": "x" * 2001}, [("description", "at most 2000")]),
    ("version-zero", REST, {"version": 0}, [("version", "greater than or equal to 1")]),
    ("version-negative", REST, {"version": -3}, [("version", "greater than or equal to 1")]),
    ("version-fraction", REST, {"version": 1.5}, [("version", "valid integer")]),
    ("version-string", REST, {"version": "1"}, [("version", "valid integer")]),
    ("version-boolean", REST, {"version": True}, [("version", "valid integer")]),
    ("type-unknown", REST, {"type": "graphql"}, [("type", "'rest_api' or 'sql'")]),
    ("authMethod-missing", REST, {"authMethod": DELETE}, [("authMethod", "is required")]),
    ("authMethod-unknown", REST, {"authMethod": "magic"}, [("authMethod", '(got "magic")')]),
    # top-level keys
    ("unknown-top-level-key", REST, {"endpoints": []}, [("endpoints", "unknown top-level key")]),
    ("misspelt-top-level-key", REST, {"allowedHost": ["x.com"]}, [("allowedHost", "allowed:")]),
    # auth
    (
        "supportedAuthMethods-without-authMethod",
        REST,
        {"supportedAuthMethods": ["api_key", "basic_auth"]},
        [("supportedAuthMethods", "must contain authMethod 'bearer_token'")],
    ),
    (
        "supportedAuthMethods-unknown-entry",
        REST,
        {"supportedAuthMethods": ["bearer_token", "kerberos"]},
        [("supportedAuthMethods[1]", '(got "kerberos")')],
    ),
    ("oauth2-without-config", REST, {"authMethod": "oauth2"}, [("oauth2Config", "is required")]),
    (
        "oauth2-http-url",
        REST,
        {
            "authMethod": "oauth2",
            "oauth2Config": {
                "authorizationUrl": "http://auth.example.com/authorize",
                "tokenUrl": "https://auth.example.com/token",
            },
        },
        [("oauth2Config.authorizationUrl", "absolute https:// URL")],
    ),
    (
        "oauth2-user-info-url",
        REST,
        {
            "authMethod": "oauth2",
            "oauth2Config": {
                "authorizationUrl": "https://user@evil.example/auth",
                "tokenUrl": "https://auth.example.com/token",
            },
        },
        [("oauth2Config.authorizationUrl", "without user-info")],
    ),
    (
        "oauth2-relative-urls",
        REST,
        {
            "authMethod": "oauth2",
            "oauth2Config": {"authorizationUrl": "/authorize", "tokenUrl": "oauth/token"},
        },
        [
            ("oauth2Config.authorizationUrl", "got '/authorize'"),
            ("oauth2Config.tokenUrl", "got 'oauth/token'"),
        ],
    ),
    (
        "oauth2Config-missing-tokenUrl",
        REST,
        {"authMethod": "oauth2", "oauth2Config": {"authorizationUrl": "https://a.example.com/"}},
        [("oauth2Config.tokenUrl", "is required")],
    ),
    # REST vs SQL shape
    (
        "sqlConnectionConfig-on-rest",
        REST,
        {"sqlConnectionConfig": {"engine": "sqlite"}},
        [("sqlConnectionConfig", "only for type 'sql'")],
    ),
    (
        "sqlOperations-on-rest",
        REST,
        {"sqlOperations": [{"name": "q", "query": "SELECT 1"}]},
        [("sqlOperations", "only for type 'sql'"), ("sqlOperations[0].query", "only for SQL")],
    ),
    (
        "query-on-rest-operation",
        REST,
        {"operations[0].query": "SELECT 1"},
        [("operations[0].query", "is only for SQL integrations")],
    ),
    (
        "sql-without-connection-config",
        SQL,
        {"sqlConnectionConfig": DELETE},
        [("sqlConnectionConfig", "is required when type is 'sql'")],
    ),
    ("sql-without-operations", SQL, {"sqlOperations": DELETE}, [("sqlOperations", "at least one operation")]),
    (
        "sql-operation-without-query",
        SQL,
        {"sqlOperations[0].query": DELETE},
        [("sqlOperations[0].query", "is required")],
    ),
    (
        "sql-operation-empty-query",
        SQL,
        {"sqlOperations[0].query": ""},
        [("sqlOperations[0].query", "at least 1 character")],
    ),
    (
        "sql-tale-shape-operation-without-query",
        SQL,
        {"operations": [{"name": "other"}]},
        [("operations[0].query", "is required")],
    ),
    (
        "sql-bad-engine",
        SQL,
        {"sqlConnectionConfig.engine": "oracle"},
        [("sqlConnectionConfig.engine", '(got "oracle")')],
    ),
    (
        "sql-engine-missing",
        SQL,
        {"sqlConnectionConfig.engine": DELETE},
        [("sqlConnectionConfig.engine", "is required")],
    ),
    (
        "sql-readOnly-not-bool",
        SQL,
        {"sqlConnectionConfig.readOnly": "maybe"},
        [("sqlConnectionConfig.readOnly", "valid boolean")],
    ),
    (
        "sql-security-unknown-key",
        SQL,
        {"sqlConnectionConfig.security.maxRows": 5},
        [("sqlConnectionConfig.security.maxRows", "unknown key")],
    ),
    # placeholders
    (
        "placeholder-not-declared",
        SQL,
        {"sqlOperations[0].query": "SELECT * FROM rooms WHERE id = @id AND floor = @floor"},
        [("sqlOperations[0].query", "placeholder @floor is not declared")],
    ),
    (
        "placeholder-without-parametersSchema",
        SQL,
        {"sqlOperations[0].parametersSchema": DELETE},
        [("sqlOperations[0].query", "placeholder @id is not declared")],
    ),
    (
        "placeholder-in-postgres-array-subscript",
        SQL,
        {
            "sqlConnectionConfig.engine": "postgres",
            "sqlOperations[0].query": "SELECT * FROM rooms WHERE id = @id AND tags[@slot] = 'x'",
        },
        [("sqlOperations[0].query", "placeholder @slot is not declared")],
    ),
    # operation names
    (
        "duplicate-operation-name",
        REST,
        {"operations[1].name": "list_items"},
        [("operations[1].name", "'list_items' is already used by operations[0]")],
    ),
    (
        "duplicate-name-across-operations-and-sqlOperations",
        SQL,
        {"operations": [{"name": "get_room", "query": "SELECT 1"}]},
        [("sqlOperations[0].name", "'get_room' is already used by operations[0]")],
    ),
    ("operation-name-missing", REST, {"operations[0].name": DELETE}, [("operations[0].name", "is required")]),
    (
        "operation-name-empty",
        REST,
        {"operations[0].name": ""},
        [("operations[0].name", "at least 1 character")],
    ),
    ("operation-unknown-key", REST, {"operations[0].params": {}}, [("operations[0].params", "unknown key")]),
    (
        "operationType-bad",
        REST,
        {"operations[0].operationType": "delete"},
        [("operations[0].operationType", "'read' or 'write'")],
    ),
    (
        "requiresApproval-string",
        REST,
        {"operations[1].requiresApproval": "false"},
        [("operations[1].requiresApproval", "valid boolean")],
    ),
    (
        "requiresApproval-number",
        REST,
        {"operations[0].requiresApproval": 0},
        [("operations[0].requiresApproval", "valid boolean")],
    ),
    (
        "exposeAsCapability-string",
        REST,
        {"exposeAsCapability": "yes"},
        [("exposeAsCapability", "valid boolean")],
    ),
    ("operations-not-a-list", REST, {"operations": {"list_items": {}}}, [("operations", "valid list")]),
    (
        "operation-not-an-object",
        REST,
        {"operations[2]": "list_items"},
        [("operations[2]", "valid dictionary")],
    ),
    # parametersSchema
    ("schema-type-typo", REST, {f"{LIMIT}.type": "strin"}, [(f"{LIMIT}.type", "not a valid JSON Schema")]),
    (
        "schema-nested-type-typo",
        REST,
        {f"{PS}.properties.filter": {"type": "object", "properties": {"x": {"type": "strng"}}}},
        [(f"{PS}.properties.filter.properties.x.type", "not a valid JSON Schema")],
    ),
    (
        "schema-properties-list",
        REST,
        {f"{PS}.properties": []},
        [(f"{PS}.properties", "[] is not of type 'object'")],
    ),
    (
        "schema-required-string",
        REST,
        {f"{PS}.required": "limit"},
        [(f"{PS}.required", "'limit' is not of type 'array'")],
    ),
    (
        "schema-minimum-string",
        REST,
        {f"{LIMIT}.minimum": "1"},
        [(f"{LIMIT}.minimum", "not a valid JSON Schema")],
    ),
    ("schema-type-array", REST, {f"{PS}.type": "array"}, [(f"{PS}.type", 'must be "object"')]),
    ("schema-type-string", REST, {f"{PS}": {"type": "string"}}, [(f"{PS}.type", 'must be "object"')]),
    ("schema-not-an-object", REST, {f"{PS}": ["limit"]}, [(PS, "valid dictionary")]),
    (
        "schema-required-not-in-properties",
        REST,
        {f"{PS}.required": ["limit", "offset"]},
        [(f"{PS}.required", "'offset' is required but not declared in properties")],
    ),
    # limits are positive
    (
        "maxResultRows-zero",
        SQL,
        {"sqlConnectionConfig.security.maxResultRows": 0},
        [("sqlConnectionConfig.security.maxResultRows", "greater than 0")],
    ),
    (
        "queryTimeoutMs-negative",
        SQL,
        {"sqlConnectionConfig.security.queryTimeoutMs": -1},
        [("sqlConnectionConfig.security.queryTimeoutMs", "greater than 0")],
    ),
    (
        "maxConnectionPoolSize-zero",
        SQL,
        {"sqlConnectionConfig.security.maxConnectionPoolSize": 0},
        [("sqlConnectionConfig.security.maxConnectionPoolSize", "greater than 0")],
    ),
    ("timeoutMs-zero", REST, {"operations[0].timeoutMs": 0}, [("operations[0].timeoutMs", "greater than 0")]),
    (
        "maxConcurrency-negative",
        REST,
        {"operations[0].maxConcurrency": -2},
        [("operations[0].maxConcurrency", "greater than 0")],
    ),
    (
        "operation-rateLimit-requests-zero",
        REST,
        {"operations[0].rateLimit": {"requests": 0}},
        [("operations[0].rateLimit.requests", "greater than 0")],
    ),
    (
        "operation-rateLimit-perSeconds-zero",
        REST,
        {"operations[0].rateLimit": {"requests": 5, "perSeconds": 0}},
        [("operations[0].rateLimit.perSeconds", "greater than 0")],
    ),
    (
        "operation-limits-memory-zero",
        REST,
        {"operations[0].limits": {"memoryMb": 0}},
        [("operations[0].limits.memoryMb", "greater than 0")],
    ),
    (
        "connectionConfig-timeout-zero",
        REST,
        {"connectionConfig.timeout": 0},
        [("connectionConfig.timeout", "greater than 0")],
    ),
    (
        "connectionConfig-timeout-string",
        REST,
        {"connectionConfig.timeout": "30000"},
        [("connectionConfig.timeout", "valid integer")],
    ),
    (
        "maxResultRows-string",
        SQL,
        {"sqlConnectionConfig.security.maxResultRows": "100"},
        [("sqlConnectionConfig.security.maxResultRows", "valid integer")],
    ),
    (
        "connectionConfig-rateLimit-requests-negative",
        REST,
        {"connectionConfig.rateLimit.requests": -10},
        [("connectionConfig.rateLimit.requests", "greater than 0")],
    ),
    # capabilities.syncFrequency
    (
        "syncFrequency-four-fields",
        REST,
        {"capabilities": {"canSync": True, "syncFrequency": "0 * * *"}},
        [("capabilities.syncFrequency", "5-field cron expression")],
    ),
    (
        "syncFrequency-six-fields",
        REST,
        {"capabilities": {"canSync": True, "syncFrequency": "0 0 * * * *"}},
        [("capabilities.syncFrequency", "got 6 fields")],
    ),
    (
        "syncFrequency-minute-out-of-range",
        REST,
        {"capabilities": {"canSync": True, "syncFrequency": "60 * * * *"}},
        [("capabilities.syncFrequency", "minute field '60': values must be in 0-59")],
    ),
    (
        "syncFrequency-hour-out-of-range",
        REST,
        {"capabilities": {"canSync": True, "syncFrequency": "0 24 * * *"}},
        [("capabilities.syncFrequency", "hour field '24'")],
    ),
    (
        "syncFrequency-zero-step",
        REST,
        {"capabilities": {"canSync": True, "syncFrequency": "*/0 * * * *"}},
        [("capabilities.syncFrequency", "step must be a positive number")],
    ),
    (
        "syncFrequency-bad-weekday-name",
        REST,
        {"capabilities": {"canSync": True, "syncFrequency": "0 9 * * MOON"}},
        [("capabilities.syncFrequency", "day of week field 'MOON'")],
    ),
    (
        "syncFrequency-without-canSync",
        REST,
        {"capabilities": {"syncFrequency": "*/15 * * * *"}},
        [("capabilities.syncFrequency", "needs capabilities.canSync: true")],
    ),
    (
        "canSync-string",
        REST,
        {"capabilities": {"canSync": "true"}},
        [("capabilities.canSync", "valid boolean")],
    ),
    (
        "syncFrequency-canSync-false",
        REST,
        {"capabilities": {"canSync": False, "syncFrequency": "*/15 * * * *"}},
        [("capabilities.syncFrequency", "needs capabilities.canSync: true")],
    ),
    # setupGuide, secretBindings
    ("setupGuide-too-long", REST, {"setupGuide": "x" * 5001}, [("setupGuide", "at most 5000 characters")]),
    (
        "secretBindings-duplicate",
        REST,
        {"secretBindings": ["accessToken", "accessToken"]},
        [("secretBindings[1]", "'accessToken' is listed twice")],
    ),
    (
        "secretBindings-space",
        REST,
        {"secretBindings": ["access token"]},
        [("secretBindings[0]", "'access token' is not a valid key name")],
    ),
    (
        "secretBindings-leading-digit",
        REST,
        {"secretBindings": ["apiKey", "2fa"]},
        [("secretBindings[1]", "'2fa' is not a valid key name")],
    ),
    (
        "secretBindings-empty-name",
        REST,
        {"secretBindings": [""]},
        [("secretBindings[0]", "is not a valid key name")],
    ),
    (
        "secretBindings-not-strings",
        REST,
        {"secretBindings": [{"name": "apiKey"}]},
        [("secretBindings[0]", "valid string")],
    ),
]

# allowedHosts entries the egress policy cannot use (DESIGN §4); the messages come from
# bollard.platform.egress.hosts.validate_allowed_host_entry.
BAD_HOSTS = [
    ("https://", "the host is empty"),
    ("", "the host is empty"),
    ("exa mple.com", "contains whitespace"),
    ("user@host.com", "contains user-info"),
    ("https://user@host.com", "contains user-info"),
    ("http://host.example.com/path", "is not a host"),
    ("api.example.com?x=1", "is not a host"),
    ("ftp://files.example.com", "only https and http are supported"),
    ("https://api.example.com:99999", "invalid port '99999'"),
    ("*.com", "is too broad"),
    ("a..example.com", "is not a valid host name"),
]


def _check(issues: list[ManifestIssue], expected: list[tuple[str, str]]) -> None:
    shown = [str(i) for i in issues]
    assert len(issues) == len(expected), f"expected {len(expected)} issue(s), got {shown}"
    for path, fragment in expected:
        matches = [i for i in issues if i.path == path and fragment in i.message]
        assert matches, f"no issue at {path!r} containing {fragment!r} in {shown}"
        assert str(matches[0]).startswith(f"{path}: "), str(matches[0])


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [pytest.param(b, c, e, id=i) for i, b, c, e in CASES],
)
def test_invalid_manifest(
    base: dict[str, Any], changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    _check(issues_of(patched(base, changes)), expected)


def test_table_is_large_enough() -> None:
    assert len(CASES) + len(BAD_HOSTS) >= 40
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize(("entry", "fragment"), BAD_HOSTS, ids=[e for e, _ in BAD_HOSTS])
def test_invalid_allowed_host_entry(entry: str, fragment: str) -> None:
    issues = issues_of(patched(REST, {"allowedHosts": ["api.example.com", entry]}))
    _check(issues, [("allowedHosts[1]", fragment)])


@pytest.mark.parametrize(
    "entry",
    ["api.example.com", "*.example.com", "myshopify.com", "http://localhost:8080", "EXAMPLE.com."],
)
def test_valid_allowed_host_entry(entry: str) -> None:
    assert parse_manifest(patched(REST, {"allowedHosts": [entry]})).warnings == []


def test_every_issue_is_reported_at_once() -> None:
    data = patched(
        REST,
        {"title": "", "operations[0].timeoutMs": 0, "setupGuide": "x" * 5001, "extra": 1},
    )
    paths = sorted(i.path for i in issues_of(data))
    assert paths == ["extra", "operations[0].timeoutMs", "setupGuide", "title"]


def test_cross_field_issues_are_reported_together() -> None:
    data = patched(
        REST,
        {
            "supportedAuthMethods": ["api_key"],
            "secretBindings": ["a", "a"],
            "operations[1].name": "list_items",
        },
    )
    paths = sorted(i.path for i in issues_of(data))
    assert paths == ["operations[1].name", "secretBindings[1]", "supportedAuthMethods"]


def test_manifest_error_message_lists_issues() -> None:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(patched(REST, {"title": DELETE, "version": 0}))
    text = str(exc.value)
    assert "title: is required" in text
    assert "version: " in text


def test_rest_manifest_needs_connector_file() -> None:
    issues = issues_of(REST, has_connector=False)
    _check(issues, [("connector.py", "needs a connector.py")])


def test_sql_manifest_needs_no_connector_file() -> None:
    assert parse_manifest(SQL, has_connector=False).manifest.type == "sql"


# --- accepted with a warning, not rejected ---------------------------------------------


def test_dollar_schema_key_is_accepted() -> None:
    m = parse_manifest(patched(REST, {"$schema": "https://example.org/other.json"})).manifest
    assert m.title == "Example"
    no_schema = patched(REST, {"$schema": DELETE})
    assert parse_manifest(no_schema).manifest.title == "Example"


@pytest.mark.parametrize("name", ["ListItems", "list-items", "2fast", "listItems"])
def test_non_recommended_operation_name_is_a_warning(name: str) -> None:
    parsed = parse_manifest(patched(REST, {"operations[0].name": name}))
    assert [str(w) for w in parsed.warnings] == [
        f"operations[0].name: '{name}' does not match ^[a-z][a-z0-9_]*$ (recommended)"
    ]
    assert parsed.manifest.operation(name) is not None


def test_declared_but_unused_parameter_is_a_warning() -> None:
    data = patched(SQL, {"sqlOperations[0].parametersSchema.properties.floor": {"type": "integer"}})
    parsed = parse_manifest(data)
    assert [str(w) for w in parsed.warnings] == [
        "sqlOperations[0].parametersSchema.properties.floor: is declared but not used in the query"
    ]


def test_allowed_hosts_on_sql_is_a_warning() -> None:
    parsed = parse_manifest(patched(SQL, {"allowedHosts": ["db.example.com"]}))
    assert [w.path for w in parsed.warnings] == ["allowedHosts"]


def test_bracket_quoted_identifier_is_not_a_parameter_on_sqlite() -> None:
    # [@slot] quotes an identifier on sqlite/mssql; only on PostgreSQL is it a subscript.
    query = "SELECT [@slot] FROM rooms WHERE id = @id"
    assert parse_manifest(patched(SQL, {"sqlOperations[0].query": query})).warnings == []


def test_placeholder_in_string_literal_is_not_a_parameter() -> None:
    query = "SELECT * FROM rooms WHERE id = @id AND note <> '@nobody' -- @comment"
    assert parse_manifest(patched(SQL, {"sqlOperations[0].query": query})).warnings == []


# --- raw bytes: config.json ---------------------------------------------------------------


def _raw_issues(raw: bytes) -> list[ManifestIssue]:
    with pytest.raises(ManifestError) as exc:
        parse_manifest_bytes(raw)
    return exc.value.issues


@pytest.mark.parametrize(
    "data", [[], "config", 42, None, [{"title": "x"}]], ids=["list", "str", "int", "null", "lst"]
)
def test_config_must_be_an_object(data: Any) -> None:
    issues = issues_of(data)
    assert [(i.path, str(i)) for i in issues] == [("", "the file must hold a JSON object")]
    raw_issues = _raw_issues(json.dumps(data).encode())
    assert [(i.path, str(i)) for i in raw_issues] == [("", "the file must hold a JSON object")]


def test_invalid_json_reports_line_and_column() -> None:
    raw = b'{\n  "title": "Example",\n  "authMethod": "none",\n  "version": ,\n}'
    issues = _raw_issues(raw)
    assert len(issues) == 1
    assert issues[0].path == ""
    assert str(issues[0]).startswith("invalid JSON at line 4 column 14: ")


def test_trailing_comma_is_invalid_json() -> None:
    raw = b'{"title": "Example", "authMethod": "none",}'
    (issue,) = _raw_issues(raw)
    assert issue.path == ""
    assert issue.message.startswith("invalid JSON at line 1 column 43: ")


def test_empty_file_is_invalid_json() -> None:
    (issue,) = _raw_issues(b"")
    assert str(issue).startswith("invalid JSON at line 1 column 1: ")


def test_oversized_config_is_rejected() -> None:
    padding = " " * (MANIFEST_MAX_BYTES + 1 - len(json.dumps(REST)))
    raw = (json.dumps(REST) + padding).encode()
    assert len(raw) == MANIFEST_MAX_BYTES + 1
    (issue,) = _raw_issues(raw)
    assert issue.path == ""
    assert str(issue) == (
        f"the file is {MANIFEST_MAX_BYTES + 1} bytes; the limit is {MANIFEST_MAX_BYTES} bytes"
    )


def test_config_at_size_limit_is_accepted() -> None:
    body = json.dumps(REST)
    raw = (body + " " * (MANIFEST_MAX_BYTES - len(body))).encode()
    assert len(raw) == MANIFEST_MAX_BYTES
    assert parse_manifest_bytes(raw).manifest.title == "Example"


def test_non_utf8_config_is_rejected() -> None:
    raw = json.dumps(patched(REST, {"title": "Café"}), ensure_ascii=False).encode("latin-1")
    assert b"Caf\xe9" in raw
    (issue,) = _raw_issues(raw)
    assert (issue.path, issue.message[:26]) == ("", "the file is not UTF-8 text")


def test_utf16_config_is_rejected() -> None:
    (issue,) = _raw_issues(json.dumps(REST).encode("utf-16"))
    assert (issue.path, issue.message[:26]) == ("", "the file is not UTF-8 text")


def test_utf8_bom_is_accepted() -> None:
    body = json.dumps(patched(REST, {"title": "Café"}), ensure_ascii=False)
    raw = b"\xef\xbb\xbf" + body.encode()
    assert parse_manifest_bytes(raw).manifest.title == "Café"


def test_bytes_are_validated_like_dicts() -> None:
    raw = json.dumps(patched(REST, {f"{LIMIT}.type": "strin"})).encode()
    (issue,) = _raw_issues(raw)
    assert str(issue).startswith(f"{LIMIT}.type: not a valid JSON Schema")
