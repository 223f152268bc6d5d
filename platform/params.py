"""Parameter validation: the operation's JSON Schema, defaults, and errors a model can read.

Every call's ``params`` are checked against the operation's normalised parameters schema
(JSON Schema 2020-12, DESIGN §2) before anything runs. Problems are reported in JSON
Schema's own terms, each naming the parameter path::

    params.id: expected integer, got boolean
    params.fromDate: expected a date (YYYY-MM-DD), got "2026-02-30"

Validators are compiled once per schema object and cached (bounded). ``pattern`` and
``patternProperties`` run on RE2 (:mod:`bollard.platform.patterns`, linear time), never
on Python's backtracking ``re``. Before the schema, the shape is checked (DESIGN §8):
at most :data:`DEFAULT_MAX_PARAM_DEPTH` levels of nesting and
:data:`DEFAULT_MAX_PARAM_BYTES` of JSON (operator settings ``BOLLARD_MAX_PARAM_DEPTH``,
``BOLLARD_MAX_PARAM_BYTES``), finite numbers only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from bollard.platform.errors import ExecutionError
from bollard.platform.manifest import Operation, format_path
from bollard.platform.patterns import compile_pattern

MAX_CACHED_VALIDATORS = 4096
DEFAULT_MAX_PARAM_DEPTH = 32  # levels, the params object being the first (DESIGN §8)
DEFAULT_MAX_PARAM_BYTES = 256 * 1024  # of compact JSON (DESIGN §8)
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


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """``pattern`` (JSON Schema: an unanchored search) on RE2."""
    if validator.is_type(instance, "string") and compile_pattern(pattern).search(instance) is None:
        yield jsonschema.exceptions.ValidationError(f"{instance!r} does not match {pattern!r}")


def _re2_pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    """``patternProperties`` with RE2, as jsonschema's own keyword does it with ``re``."""
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        compiled = compile_pattern(pattern)
        for key, value in instance.items():
            if compiled.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _re2_additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """``additionalProperties``: a property is additional unless ``properties`` names it
    or a ``patternProperties`` pattern (RE2) matches it."""
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = [compile_pattern(p) for p in schema.get("patternProperties", {})]
    extras = [k for k in instance if k not in properties and not any(p.search(k) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        yield jsonschema.exceptions.ValidationError(
            f"Additional properties are not allowed ({', '.join(map(repr, sorted(extras)))} unexpected)"
        )


RE2_KEYWORDS = {
    "pattern": _re2_pattern,
    "patternProperties": _re2_pattern_properties,
    "additionalProperties": _re2_additional_properties,
}


def _re2_class(cls: Any) -> Any:
    """``cls`` with the keywords above (one extended class per draft, made once)."""
    made = _re2_classes.get(cls)
    if made is None:
        made = _re2_classes[cls] = jsonschema.validators.extend(cls, RE2_KEYWORDS)
    return made


_re2_classes: dict[Any, Any] = {}


def validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The compiled validator of ``schema`` (with format checking, ``pattern`` and
    ``patternProperties`` on RE2), cached by identity. The loader refused patterns RE2
    cannot compile and ``unevaluatedProperties`` next to ``patternProperties`` (whose
    matching jsonschema does with ``re``), DESIGN §2."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator: jsonschema.protocols.Validator = _re2_class(cls)(schema, format_checker=cls.FORMAT_CHECKER)
    if len(_validators) >= MAX_CACHED_VALIDATORS:  # schemas of replaced versions; rebuilt on demand
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


def _number_literal(value: float) -> str:
    """``NaN``, ``Infinity`` or ``-Infinity``: how the value was written (JavaScript's words)."""
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def non_finite_problems(value: Any, prefix: str = "params") -> list[dict[str, str]]:
    """``{"path", "message"}`` for every ``NaN``/``Infinity`` in ``value`` (walked without
    recursion). Python's ``json`` (and so FastAPI) accepts these literals; JSON has no such
    numbers and minimum/maximum let them through (DESIGN §8: finite numbers only)."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, [prefix])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(
                {
                    "path": format_path(path),
                    "message": f"{_number_literal(node)} is not a finite number (JSON numbers are "
                    "finite; send a number, null or a string)",
                }
            )
        elif isinstance(node, dict):
            stack.extend((v, [*path, str(k)]) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(node))))
    return problems


def shape_problems(params: dict[str, Any], *, max_depth: int, max_bytes: int) -> list[dict[str, str]]:
    """Depth, non-finite numbers, then size of ``params`` (DESIGN §8), as ``{"path",
    "message"}``. Depth counts the params object as level 1; a too-deep value is reported
    at its top-level parameter. Size is that of compact UTF-8 JSON, checked only once the
    depth is fine (encoding a deep value would recurse)."""
    deep: dict[str, None] = {}
    stack: list[tuple[Any, list[str | int], int]] = [(params, ["params"], 1)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            deep[format_path(path[:2])] = None
            continue
        items = node.items() if isinstance(node, dict) else enumerate(node)
        stack.extend((v, [*path, k], depth + 1) for k, v in items)
    problems = [
        {
            "path": path,
            "message": f"is nested deeper than {max_depth} levels (the limit, BOLLARD_MAX_PARAM_DEPTH); "
            "flatten it, or send it as a JSON string",
        }
        for path in deep
    ]
    problems += non_finite_problems(params)
    if not problems:
        size = len(json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode())
        if size > max_bytes:
            problems.append(
                {
                    "path": "params",
                    "message": f"is {size / 1024:.0f} KB of JSON, more than the {max_bytes // 1024} KB limit "
                    "(BOLLARD_MAX_PARAM_BYTES); send less, or pass a reference to the data",
                }
            )
    return problems


RENDER_MAX_DEPTH = 64  # views show stored values this deep; parameters are capped at 32


def renderable(value: Any, max_depth: int = RENDER_MAX_DEPTH, _depth: int = 1) -> Any:
    """A copy of a stored JSON value that every view can encode: non-finite numbers become
    ``null`` and containers deeper than ``max_depth`` a short string saying so. Rows
    written before the parameter caps (or a deep connector result) must not make a list
    answer 500 (issue 9, item 19)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list):
        if _depth > max_depth:
            return f"[{json_type(value)} nested deeper than {max_depth} levels, not shown]"
        if isinstance(value, dict):
            return {str(k): renderable(v, max_depth, _depth + 1) for k, v in value.items()}
        return [renderable(v, max_depth, _depth + 1) for v in value]
    return value


def validate_params(
    op: Operation,
    params: Any,
    *,
    max_depth: int = DEFAULT_MAX_PARAM_DEPTH,
    max_bytes: int = DEFAULT_MAX_PARAM_BYTES,
) -> dict[str, Any]:
    """Check ``params`` against the operation's JSON Schema and fill defaults.

    Unknown top-level parameters are refused (an agent's misspelt parameter must not be
    ignored silently); so are values nested deeper than ``max_depth``, larger than
    ``max_bytes`` of JSON, or not finite (:func:`shape_problems`, checked first). Raises
    :class:`ExecutionError` ``invalid_params`` whose message lists every problem as
    ``params.<path>: <reason>`` and whose ``details`` is the list of ``{"path", "message"}``.
    """
    if not isinstance(params, dict):
        raise ExecutionError(
            "invalid_params", f"params must be a JSON object, got {json_type(params)}", details=[]
        )
    shape = shape_problems(params, max_depth=max_depth, max_bytes=max_bytes)
    if shape:
        raise ExecutionError("invalid_params", "; ".join(f"{p['path']}: {p['message']}" for p in shape),
                             details=shape)  # fmt: skip
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
