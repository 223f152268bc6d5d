"""Run forms generated from an operation's ``parametersSchema`` (DESIGN §13).

A *flat* schema (an object whose properties are each a string, number, integer or
boolean, optionally an ``enum``) gets one input per property; anything else (nested
objects, arrays, ``oneOf``…) gets a JSON editor. Form values are only converted to the
JSON types the schema names; whether they are valid is decided by the execution service
(the same validation as every other caller), never here.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData

from bollard.platform.errors import ApiError

SCALARS = frozenset({"string", "number", "integer", "boolean"})
FIELD_PREFIX = "p."


def _scalar_type(prop: Any) -> str | None:
    if not isinstance(prop, dict):
        return None
    t = prop.get("type")
    if isinstance(t, list):  # ["string", "null"]: the non-null type
        rest = [x for x in t if x != "null"]
        t = rest[0] if len(rest) == 1 else None
    if t in SCALARS:
        return str(t)
    if "enum" in prop and all(isinstance(v, str | int | float | bool) for v in prop["enum"]):
        return "string"
    return None


def form_fields(schema: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``[{name, type, required, enum, description, default, title}]`` for a flat schema,
    or ``None`` when it needs the JSON editor."""
    props = schema.get("properties") or {}
    if schema.get("type", "object") != "object" or not isinstance(props, dict):
        return None
    for key in ("oneOf", "anyOf", "allOf", "patternProperties", "if", "$ref"):
        if key in schema:
            return None
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in props.items():
        t = _scalar_type(prop)
        if t is None:
            return None
        fields.append(
            {
                "name": name,
                "type": t,
                "required": name in required,
                "enum": prop.get("enum"),
                "description": prop.get("description"),
                "title": prop.get("title") or name,
                "default": prop.get("default"),
            }
        )
    return fields


def _convert(value: str, t: str) -> Any:
    """``value`` as the JSON type ``t``; left as text when it does not convert, so the
    validator names the field and the expected type."""
    try:
        if t == "integer":
            return int(value)
        if t == "number":
            number = float(value)
            return (
                int(number)
                if number.is_integer() and "." not in value and "e" not in value.lower()
                else number
            )
    except ValueError:
        return value
    return value


def params_from_form(form: FormData, schema: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a run form: the JSON editor's object (``params_json``), or each
    ``p.<name>`` field converted to its schema type (empty fields are left out, so
    defaults apply). Raises ``invalid_request`` for JSON that does not parse."""
    raw = form.get("params_json")
    if isinstance(raw, str):
        text = raw.strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ApiError(
                "invalid_request", f"params: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}"
            ) from None
        if not isinstance(value, dict):
            raise ApiError("invalid_request", 'params: must be a JSON object, like {"limit": 10}')
        return value
    params: dict[str, Any] = {}
    for f in form_fields(schema) or []:
        key = FIELD_PREFIX + f["name"]
        if f["type"] == "boolean":  # a select: (not sent), true, false
            if form.get(key) in ("true", "false"):
                params[f["name"]] = form.get(key) == "true"
            continue
        value = form.get(key)
        if isinstance(value, str) and value != "":
            params[f["name"]] = _convert(value, f["type"])
    return params
