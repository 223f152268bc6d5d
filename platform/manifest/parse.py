"""Loading a manifest: :func:`parse_manifest` and :func:`parse_manifest_bytes` (DESIGN §2).

The one entry point everywhere (folder load, upload, CLI): it normalises Tale's shapes
(per-property ``"required": true``), validates the Pydantic model, then applies the
cross-field rules, and raises :class:`ManifestError` listing every problem with its field
path (``operations[3].parametersSchema.properties.limit.type: …``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import ValidationError

from bollard.platform.manifest.issues import ManifestError, ManifestIssue, ParsedManifest, format_path
from bollard.platform.manifest.models import Manifest
from bollard.platform.manifest.rules import cross_field_rules

MANIFEST_MAX_BYTES = 512 * 1024


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
# Union/annotated wrapper names pydantic puts in error locations.
_WRAPPERS = {"function-after", "function-before", "function-wrap", "constrained-str"}
_TOP_LEVEL_KEYS = {f.alias or n for n, f in Manifest.model_fields.items()}
_UNKNOWN_KEY = "unknown top-level key; remove it (allowed: " + ", ".join(sorted(_TOP_LEVEL_KEYS)) + ")"


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
    errors, warnings = cross_field_rules(manifest, has_connector)
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
