"""``pattern`` in a parameter schema runs on RE2 (DESIGN §2; issue 9, item 18): a pattern
RE2 cannot compile is a load error naming its field path, and nested quantifiers (the
shape of a catastrophic backtracking pattern) are a lint warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bollard.platform.manifest import ManifestError, parse_manifest
from bollard.platform.packages import load_folder
from tests.support.integrations import rest_manifest, write_integration


def with_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return rest_manifest(operations=[{"name": "echo", "parametersSchema": schema}])


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        (
            {"type": "object", "properties": {"code": {"type": "string", "pattern": r"^(a)\1$"}}},
            "operations[0].parametersSchema.properties.code.pattern",
        ),
        (
            {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(?=x)x$"}}},
            "operations[0].parametersSchema.properties.code.pattern",
        ),
        (
            {
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string", "pattern": "(?<!a)b"}}},
            },
            "operations[0].parametersSchema.properties.tags.items.pattern",
        ),
        (
            {"type": "object", "patternProperties": {"^(?!x)": {"type": "string"}}},
            "operations[0].parametersSchema.patternProperties",
        ),
    ],
    ids=["backreference", "lookahead", "nested-lookbehind", "patternProperties-key"],
)
def test_a_pattern_re2_cannot_compile_is_a_load_error(schema: dict[str, Any], path: str) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(with_schema(schema))
    issues = [i for i in exc.value.issues if i.path == path]
    assert issues, [str(i) for i in exc.value.issues]
    assert "RE2" in issues[0].message and "lookaround" in issues[0].message


def test_patterns_re2_compiles_load(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": r"^[A-Z]{2}\d{4}$"},
            "name": {"type": "string", "pattern": r"^\p{L}+$"},
        },
        "patternProperties": {"^x-": {"type": "string"}},
    }
    assert parse_manifest(with_schema(schema)).manifest.operation("echo") is not None
    folder = write_integration(tmp_path, "fine", manifest=with_schema(schema))
    assert [str(w) for w in load_folder(folder).lints] == []


@pytest.mark.parametrize(
    "pattern", ["^([a-zA-Z0-9]+)+$", "(a*)*b", "^(x+x+)+y$", "((ab)+)*", "(\\w+\\s?){2,}$"]
)
def test_nested_quantifiers_are_a_lint_warning(tmp_path: Path, pattern: str) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}
    version = load_folder(write_integration(tmp_path, "nested", manifest=with_schema(schema)))
    messages = [lint.message for lint in version.lints]
    assert len(messages) == 1, messages
    assert messages[0].startswith("config.json: operations[0].parametersSchema.properties.code.pattern: ")
    assert "nested quantifier" in messages[0] and version.lints[0].severity == "warning"


@pytest.mark.parametrize("pattern", ["^[a-z]+$", "(ab)+", "([a-z]+)?", "(a|b)*", r"\(a+\)+", "[(a+)]+"])
def test_single_quantifiers_are_not_linted(tmp_path: Path, pattern: str) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}
    version = load_folder(write_integration(tmp_path, "plain", manifest=with_schema(schema)))
    assert [lint.message for lint in version.lints] == []


def test_properties_named_like_keywords_are_still_checked() -> None:
    schema = {
        "type": "object",
        "properties": {
            "default": {"type": "string", "pattern": "(?=x)"},
            "enum": {"type": "object", "properties": {"pattern": {"type": "string", "pattern": r"(a)\1"}}},
        },
    }
    with pytest.raises(ManifestError) as exc:
        parse_manifest(with_schema(schema))
    paths = sorted(i.path for i in exc.value.issues)
    assert paths == [
        "operations[0].parametersSchema.properties.default.pattern",
        "operations[0].parametersSchema.properties.enum.properties.pattern.pattern",
    ]
    data_only = {"type": "object", "properties": {"x": {"type": "object", "default": {"pattern": "(?=x)"}}}}
    assert parse_manifest(with_schema(data_only)).manifest.operation("echo") is not None
