"""Parameter schemas in the JSON Schema subset OpenAI's function calling accepts (DESIGN §9).

OpenAI's Structured Outputs guide ("Supported schemas") allows these keywords: ``type``
(string, number, integer, boolean, object, array, null, or a list of them), ``properties``,
``required``, ``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf``,
``description``, ``$ref``/``$defs``; for strings ``pattern`` and ``format`` (only
``date-time``, ``time``, ``date``, ``duration``, ``email``, ``hostname``, ``ipv4``,
``ipv6``, ``uuid``); for numbers ``multipleOf``, ``minimum``, ``maximum``,
``exclusiveMinimum``, ``exclusiveMaximum``; for arrays ``minItems``, ``maxItems``.
Everything else (``minLength``, ``maxLength``, ``default``, ``examples``, ``oneOf``,
``allOf``, ``not``, ``if``/``then``/``else``, ``patternProperties``, ``uniqueItems``, other
formats, …) is removed by :func:`openai_parameters` and written into that schema's
``description`` instead (``"(maxLength: 100; default: 30)"``), so the model still reads
the constraint. Nothing is lost for correctness: Bollard validates every call against the
operation's full schema (``params.py``) and answers ``invalid_params`` naming the path.
``oneOf`` becomes ``anyOf`` (the same alternatives, checked exactly by Bollard).

Strict mode (``"strict": true``) additionally needs, per the same guide: the root an
object (not ``anyOf``), every object with ``additionalProperties: false`` and every
property listed in ``required`` (an optional field would have to become nullable, which
Bollard's schema would then refuse), every subschema typed, ``$ref`` without siblings, at
most 10 levels of nesting, 5 000 properties, 1 000 enum values and 120 000 characters of
property names, enum and const values. :func:`strict_problems` lists what stands in the
way; a tool is marked strict only when nothing does.
"""

from __future__ import annotations

import json
from typing import Any

KEPT = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "description",
        "$ref",
        "$defs",
        "pattern",
        "format",
        "multipleOf",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
    }
)
FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
# Keywords that carry nothing a model needs: removed without a note.
SILENT = frozenset({"$schema", "$id", "$comment", "$anchor", "title", "deprecated", "readOnly", "writeOnly"})

MAX_DEPTH = 10
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000
MAX_STRING_CHARS = 120_000
NOTE_CHARS = 200  # one removed keyword's value, as JSON, at most


def _note(key: str, value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    if len(text) > NOTE_CHARS:
        text = text[: NOTE_CHARS - 1] + "…"
    return f"{key}: {text}"


def _is_object(node: dict[str, Any]) -> bool:
    t = node.get("type")
    return t == "object" or (isinstance(t, list) and "object" in t) or "properties" in node


def _schema_map(value: Any) -> dict[str, Any]:
    return {str(k): _convert(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _keyword(out: dict[str, Any], notes: list[str], key: str, value: Any) -> None:
    """Convert one keyword of a subschema into ``out`` (or a note)."""
    if key in ("properties", "$defs"):
        out[key] = _schema_map(value)
    elif key == "items" and isinstance(value, dict | bool):
        out[key] = _convert(value)
    elif key in ("anyOf", "oneOf") and isinstance(value, list) and "anyOf" not in out:
        out["anyOf"] = [_convert(v) for v in value]
    elif key == "additionalProperties" and isinstance(value, dict):
        out[key] = _convert(value)
    elif key == "format" and value not in FORMATS:
        notes.append(_note(key, value))
    elif key in KEPT and key not in ("items", "anyOf"):
        out[key] = value
    elif key not in SILENT:
        notes.append(_note(key, value))


def _convert(node: Any) -> dict[str, Any]:
    if node is False:  # JSON Schema's "nothing matches"; OpenAI's subset has no such schema
        return {"description": "(no value is accepted here)"}
    if not isinstance(node, dict):  # ``true``: anything
        return {}
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in node.items():
        _keyword(out, notes, str(key), value)
    if _is_object(out) and "properties" in out and "additionalProperties" not in out:
        # Only tightens: the model may send fewer keys than Bollard would accept, never more.
        out["additionalProperties"] = False
    if notes:
        text = "(" + "; ".join(notes) + ")"
        out["description"] = f"{out['description']} {text}" if out.get("description") else text
    return out


def openai_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a tool's normalised parameters schema) in OpenAI's subset (module docstring).

    The root is an object schema with ``properties`` and ``required`` (both possibly
    empty) and ``additionalProperties`` as declared (``false`` when not). Returns a new
    schema; ``schema`` is not changed.
    """
    out = _convert(schema)
    out["type"] = "object"
    out.setdefault("properties", {})
    out.setdefault("required", [])
    out.setdefault("additionalProperties", False)
    return out


def _walk(node: Any, depth: int, path: str, found: list[str], counts: dict[str, int]) -> None:
    if not isinstance(node, dict):
        return
    if depth > MAX_DEPTH:
        found.append(f"{path}: nested deeper than {MAX_DEPTH} levels")
        return
    if not any(k in node for k in ("type", "anyOf", "enum", "const", "$ref")):
        found.append(f"{path}: has no type")
    if "$ref" in node and len(node) > 1:
        found.append(f"{path}: $ref has sibling keywords")
    if _is_object(node):
        props = node.get("properties") or {}
        counts["properties"] += len(props)
        counts["chars"] += sum(len(k) for k in props)
        if node.get("additionalProperties") is not False:
            found.append(f"{path}: additionalProperties is not false")
        optional = [k for k in props if k not in (node.get("required") or [])]
        if optional:
            found.append(f"{path}: optional properties ({', '.join(optional[:5])})")
    for key in ("enum", "const"):
        values = node.get(key) if key == "enum" else [node.get(key)] if key in node else []
        if isinstance(values, list):
            counts["enum"] += len(values) if key == "enum" else 0
            counts["chars"] += sum(len(v) for v in values if isinstance(v, str))
    for key in ("properties", "$defs"):
        for name, sub in (node.get(key) or {}).items():
            _walk(sub, depth + 1, f"{path}.{name}", found, counts)
    for sub in node.get("anyOf") or []:
        _walk(sub, depth + 1, f"{path}|anyOf", found, counts)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], depth + 1, f"{path}[]", found, counts)


def strict_problems(schema: dict[str, Any]) -> list[str]:
    """What keeps the converted ``schema`` from OpenAI's strict mode (empty: it qualifies).

    Each problem names its path from the root (``params.filter.kind: has no type``).
    """
    found: list[str] = []
    if "anyOf" in schema or schema.get("type") != "object":
        found.append("params: the root is not a plain object schema")
    counts = {"properties": 0, "enum": 0, "chars": 0}
    _walk(schema, 1, "params", found, counts)
    if counts["properties"] > MAX_PROPERTIES:
        found.append(f"params: more than {MAX_PROPERTIES} properties")
    if counts["enum"] > MAX_ENUM_VALUES:
        found.append(f"params: more than {MAX_ENUM_VALUES} enum values")
    if counts["chars"] > MAX_STRING_CHARS:
        found.append(f"params: more than {MAX_STRING_CHARS} characters of names and values")
    return found
