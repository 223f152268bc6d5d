"""Tale compatibility shapes normalised at load (DESIGN §2, §6): per-property
``"required": true``, SQL queries in ``operations[].query``, approval rules, engine
aliases."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from bollard.platform.manifest import (
    Manifest,
    normalize_required,
    parse_manifest,
    parse_manifest_bytes,
)
from tests.support.paths import CORPUS


def rest_with_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": "Example",
        "authMethod": "none",
        "operations": [{"name": "search", "parametersSchema": schema}],
    }


def loaded_schema(schema: dict[str, Any]) -> dict[str, Any]:
    m = parse_manifest(rest_with_schema(schema)).manifest
    op = m.operation("search")
    assert op is not None
    return op.params_schema


# --- per-property "required" ----------------------------------------------------------


def test_boolean_required_becomes_array() -> None:
    tale = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "required": True},
            "limit": {"type": "number", "required": False},
            "page": {"type": "number"},
        },
    }
    assert normalize_required(tale) == {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "number"},
            "page": {"type": "number"},
        },
        "required": ["query"],
    }


def test_only_false_leaves_no_required_key() -> None:
    tale = {"type": "object", "properties": {"a": {"type": "string", "required": False}}}
    assert normalize_required(tale) == {"type": "object", "properties": {"a": {"type": "string"}}}


def test_required_order_follows_properties() -> None:
    tale = {
        "type": "object",
        "properties": {
            "c": {"type": "string", "required": True},
            "a": {"type": "string", "required": True},
            "b": {"type": "string", "required": True},
        },
    }
    assert normalize_required(tale)["required"] == ["c", "a", "b"]


def test_input_schema_is_not_changed() -> None:
    tale = {"type": "object", "properties": {"a": {"type": "string", "required": True}}}
    before = copy.deepcopy(tale)
    normalize_required(tale)
    assert tale == before


def test_nested_objects_and_array_items_are_normalised() -> None:
    tale = {
        "type": "object",
        "properties": {
            "address": {
                "type": "object",
                "required": True,
                "properties": {
                    "city": {"type": "string", "required": True},
                    "zip": {"type": "string", "required": False},
                },
            },
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "required": True},
                        "qty": {"type": "integer", "required": True},
                    },
                },
            },
        },
    }
    out = normalize_required(tale)
    assert out["required"] == ["address"]
    assert out["properties"]["address"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
        "required": ["city"],
    }
    assert out["properties"]["lines"]["items"]["required"] == ["sku", "qty"]
    assert "required" not in out["properties"]["lines"]["items"]["properties"]["sku"]
    jsonschema.Draft202012Validator.check_schema(out)


def test_mixed_forms_are_merged_without_duplicates() -> None:
    mixed = {
        "type": "object",
        "properties": {
            "owner": {"type": "string"},
            "repo": {"type": "string", "required": True},
            "title": {"type": "string", "required": True},
            "body": {"type": "string", "required": False},
        },
        "required": ["owner", "title"],
    }
    out = normalize_required(mixed)
    assert out["required"] == ["owner", "title", "repo"]
    assert all("required" not in p for p in out["properties"].values())


def test_standard_schema_is_left_alone() -> None:
    standard = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["b"],
        "additionalProperties": False,
    }
    assert normalize_required(standard) == standard


def test_property_named_required_is_not_mistaken_for_the_flag() -> None:
    # A parameter called "required" is a property schema, not a boolean flag.
    schema = {
        "type": "object",
        "properties": {"required": {"type": "boolean"}, "name": {"type": "string"}},
        "required": ["required"],
    }
    assert normalize_required(schema) == schema
    assert loaded_schema(schema) == schema


def test_tale_schema_is_invalid_json_schema_until_normalised() -> None:
    """Why normalisation is needed: the boolean form is not a valid JSON Schema."""
    tale = {"type": "object", "properties": {"q": {"type": "string", "required": True}}}
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema(tale)
    schema = loaded_schema(tale)
    assert schema == {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"q": "x"})
    errors = [e.message for e in validator.iter_errors({})]
    assert errors == ["'q' is a required property"]


def test_normalisation_applies_to_sql_operations_too() -> None:
    data = {
        "title": "DB",
        "type": "sql",
        "authMethod": "none",
        "sqlConnectionConfig": {"engine": "sqlite"},
        "sqlOperations": [
            {
                "name": "get",
                "query": "SELECT * FROM t WHERE id = @id AND kind = @kind",
                "parametersSchema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer", "required": True},
                        "kind": {"type": "string", "required": False},
                    },
                },
            }
        ],
    }
    op = parse_manifest(data).manifest.operation("get")
    assert op is not None
    assert op.params_schema["required"] == ["id"]
    assert op.params_schema["properties"]["id"] == {"type": "integer"}


def test_normalise_does_not_change_the_callers_dict() -> None:
    data = rest_with_schema({"type": "object", "properties": {"q": {"type": "string", "required": True}}})
    before = copy.deepcopy(data)
    parse_manifest(data)
    assert data == before


def test_corpus_github_required_params() -> None:
    m = parse_manifest_bytes((CORPUS / "github" / "config.json").read_bytes()).manifest
    get_issue = m.operation("get_issue")
    assert get_issue is not None
    assert get_issue.params_schema["required"] == ["owner", "repo", "issue_number"]
    list_repos = m.operation("list_repos")
    assert list_repos is not None
    assert "required" not in list_repos.params_schema


# --- SQL manifests with operations[].query (Tale's protel shape) -------------------------


def test_protel_shape_operations_with_query() -> None:
    raw = json.loads((CORPUS / "protel" / "config.json").read_text(encoding="utf-8"))
    assert "sqlOperations" not in raw and raw["operations"][0]["query"]
    m = parse_manifest(raw).manifest
    assert m.type == "sql"
    assert m.sql_connection_config is not None
    assert m.sql_connection_config.engine == "mssql"
    assert m.sql_operations == []
    assert [op.name for op in m.all_operations] == [op["name"] for op in raw["operations"]]
    op = m.operation("get_reservation")
    assert op is not None
    assert op.query is not None and "WHERE b.buchnr = @reservationId" in op.query
    assert op.params_schema["required"] == ["reservationId"]
    assert op.operation_type == "read"
    assert not op.needs_approval


def test_inline_protel_shape_and_sqloperations_are_both_available() -> None:
    data = {
        "title": "PMS",
        "type": "sql",
        "authMethod": "basic_auth",
        "secretBindings": ["username", "password"],
        "sqlConnectionConfig": {"engine": "mssql"},
        "operations": [
            {
                "name": "list_rooms",
                "query": "SELECT * FROM rooms WHERE floor = @floor",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"floor": {"type": "integer", "required": True}},
                },
            }
        ],
        "sqlOperations": [
            {
                "name": "count_rooms",
                "query": "SELECT COUNT(*) AS n FROM rooms",
            }
        ],
    }
    m = parse_manifest(data).manifest
    assert [op.name for op in m.all_operations] == ["list_rooms", "count_rooms"]
    list_rooms = m.operation("list_rooms")
    count_rooms = m.operation("count_rooms")
    assert list_rooms is not None and count_rooms is not None
    assert list_rooms.query == "SELECT * FROM rooms WHERE floor = @floor"
    assert list_rooms.params_schema["required"] == ["floor"]
    assert count_rooms.query == "SELECT COUNT(*) AS n FROM rooms"
    assert count_rooms.params_schema == {"type": "object", "properties": {}}
    assert m.operation("missing") is None
    # SQL credentials: secretBindings first, then the connection fields.
    assert m.credential_keys[:2] == ("username", "password")
    assert "server" in m.credential_keys and "database" in m.credential_keys


# --- approval rules (DESIGN §6) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation_type", "requires_approval", "expected"),
    [
        ("read", None, False),
        ("read", False, False),
        ("read", True, True),
        ("write", None, True),
        ("write", True, True),
        ("write", False, False),
        (None, None, False),
        (None, True, True),
    ],
)
def test_needs_approval(operation_type: str | None, requires_approval: bool | None, expected: bool) -> None:
    op_data: dict[str, Any] = {"name": "op"}
    if operation_type is not None:
        op_data["operationType"] = operation_type
    if requires_approval is not None:
        op_data["requiresApproval"] = requires_approval
    m = parse_manifest({"title": "T", "authMethod": "none", "operations": [op_data]}).manifest
    op = m.operation("op")
    assert op is not None
    assert op.needs_approval is expected
    assert op.operation_type == (operation_type or "read")


def test_corpus_write_operations_need_approval() -> None:
    m = parse_manifest_bytes((CORPUS / "github" / "config.json").read_bytes()).manifest
    writes = {op.name for op in m.all_operations if op.operation_type == "write"}
    gated = {op.name for op in m.all_operations if op.needs_approval}
    assert "create_issue" in writes
    assert writes <= gated


# --- engine aliases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "engine"),
    [
        ("postgresql", "postgres"),
        ("pg", "postgres"),
        ("postgres", "postgres"),
        ("mariadb", "mysql"),
        ("mysql", "mysql"),
        ("sqlserver", "mssql"),
        ("mssql", "mssql"),
        ("sqlite", "sqlite"),
    ],
)
def test_engine_alias(spelling: str, engine: str) -> None:
    data = {
        "title": "DB",
        "type": "sql",
        "authMethod": "none",
        "sqlConnectionConfig": {"engine": spelling},
        "sqlOperations": [{"name": "one", "query": "SELECT 1"}],
    }
    m = parse_manifest(data).manifest
    assert m.sql_connection_config is not None
    assert m.sql_connection_config.engine == engine


# --- other defaults ---------------------------------------------------------------------


def test_defaults() -> None:
    m = parse_manifest({"title": "T", "authMethod": "none"}).manifest
    assert isinstance(m, Manifest)
    assert m.version == 1
    assert m.type == "rest_api"
    assert m.allowed_hosts == []
    assert m.secret_bindings == []
    assert m.all_operations == []


def test_mock_presence() -> None:
    data = {
        "title": "T",
        "authMethod": "none",
        "operations": [
            {"name": "with_mock", "mock": {"items": []}},
            {"name": "null_mock", "mock": None},
            {"name": "no_mock"},
        ],
    }
    m = parse_manifest(data).manifest
    ops = {op.name: op for op in m.all_operations}
    assert ops["with_mock"].has_mock and ops["with_mock"].mock == {"items": []}
    assert ops["null_mock"].has_mock and ops["null_mock"].mock is None
    assert not ops["no_mock"].has_mock
