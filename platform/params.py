"""Parameter validation: the operation's JSON Schema, defaults, and errors a model can read.

Every call's ``params`` are checked against the operation's normalised parameters schema
(JSON Schema 2020-12, DESIGN §2) before anything runs. Problems are reported in JSON
Schema's own terms, each naming the parameter path::

    params.id: expected integer, got boolean
    params.fromDate: expected a date (YYYY-MM-DD), got "2026-02-30"

Validators are compiled once per schema object and cached (bounded).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import jsonschema.exceptions

from bollard.platform.errors import ExecutionError
from bollard.platform.manifest import Operation, format_path

MAX_CACHED_VALIDATORS = 4096
_validators: dict[int, tuple[dict[str, Any], jsonschema.protocols.Validator]] = {}

# What each string ``format`` expects, as a person would write it.
FORMAT_WORDS = {
    "date": "a date (YYYY-MM-DD)",
    "date-time": "a date-time (RFC 3339, e.g. 2026-01-31T09:30:00Z)",
    "time": "a time (RFC 3339, e.g. 09:30:00Z)",
    "email": "an email address",
    "uri": "an absolute URI",
    "uuid": "a UUID",
    "ipv4": "an IPv4 address",
    "ipv6": "an IPv6 address",
    "hostname": "a host name",
    "duration": "an ISO 8601 duration (e.g. P1DT2H)",
}


def json_type(value: Any) -> str:
    """The JSON type name of a decoded JSON value (``boolean`` before ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: Any, limit: int = 80) -> str:
    """``value`` as JSON text, shortened to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _expected_types(expected: Any) -> str:
    names = expected if isinstance(expected, list) else [expected]
    return " or ".join(str(n) for n in names)


def describe(err: jsonschema.exceptions.ValidationError) -> str:
    """One validation error in JSON Schema terms (no Python reprs)."""
    kw, expected, got = err.validator, err.validator_value, err.instance
    if kw == "type":
        return f"expected {_expected_types(expected)}, got {json_type(got)}"
    if kw == "format":
        return f"expected {FORMAT_WORDS.get(str(expected), f'format {expected}')}, got {_show(got)}"
    if kw == "enum":
        return f"expected one of {', '.join(_show(v, 40) for v in expected)}, got {_show(got)}"
    if kw == "const":
        return f"expected {_show(expected)}, got {_show(got)}"
    if kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "greater than",
            "exclusiveMaximum": "less than",
        }
        return f"expected a number {words[str(kw)]} {expected}, got {_show(got)}"
    if kw == "multipleOf":
        return f"expected a multiple of {expected}, got {_show(got)}"
    if kw in ("minLength", "maxLength"):
        bound = "at least" if kw == "minLength" else "at most"
        return f"expected a string of {bound} {expected} characters, got {len(got)}"
    if kw in ("minItems", "maxItems"):
        bound = "at least" if kw == "minItems" else "at most"
        return f"expected an array of {bound} {expected} items, got {len(got)}"
    if kw in ("minProperties", "maxProperties"):
        bound = "at least" if kw == "minProperties" else "at most"
        return f"expected an object with {bound} {expected} properties, got {len(got)}"
    if kw == "pattern":
        return f"expected a string matching the pattern {expected}, got {_show(got)}"
    if kw == "uniqueItems":
        return "expected array items to be unique"
    if kw == "additionalProperties":
        extra = sorted(set(got) - set(err.schema.get("properties") or {})) if isinstance(got, dict) else []
        return f"unknown propert{'y' if len(extra) == 1 else 'ies'}: {', '.join(extra)}"
    return str(err.message)


def _required_name(err: jsonschema.exceptions.ValidationError) -> str:
    """The missing property of a ``required`` error (jsonschema words it in Python repr)."""
    missing = [n for n in err.validator_value if isinstance(err.instance, dict) and n not in err.instance]
    return str(missing[0]) if missing else str(err.message)


def apply_defaults(schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level ``default`` values of the parameters schema for omitted parameters."""
    out = dict(params)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in out and isinstance(prop, dict) and "default" in prop:
            out[name] = prop["default"]
    return out


def validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The compiled validator of ``schema`` (with format checking), cached by identity."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    if len(_validators) >= MAX_CACHED_VALIDATORS:  # schemas of replaced versions; rebuilt on demand
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


def validate_params(op: Operation, params: Any) -> dict[str, Any]:
    """Check ``params`` against the operation's JSON Schema and fill defaults.

    Unknown top-level parameters are refused (an agent's misspelt parameter must not be
    ignored silently). Raises :class:`ExecutionError` ``invalid_params`` whose message
    lists every problem as ``params.<path>: <reason>`` and whose ``details`` is the list
    of ``{"path", "message"}``.
    """
    if not isinstance(params, dict):
        raise ExecutionError(
            "invalid_params", f"params must be a JSON object, got {json_type(params)}", details=[]
        )
    schema = op.params_schema
    known = set((schema.get("properties") or {}).keys())
    problems: list[dict[str, str]] = []
    if schema.get("additionalProperties", None) is None:
        for name in params:
            if name not in known:
                hint = (
                    f"; known parameters: {', '.join(sorted(known))}"
                    if known
                    else "; this operation takes none"
                )
                problems.append({"path": f"params.{name}", "message": f"unknown parameter{hint}"})
    errors = validator_for(schema).iter_errors(params)
    for err in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        if err.validator == "required":
            path = format_path(["params", *err.absolute_path, _required_name(err)])
            message = "is required"
        else:
            path = format_path(["params", *err.absolute_path])
            message = describe(err)
        problems.append({"path": path, "message": message[:300]})
    if problems:
        text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise ExecutionError("invalid_params", text, details=problems)
    return apply_defaults(schema, params)
