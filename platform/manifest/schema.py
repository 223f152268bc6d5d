"""The manifest's JSON Schema, published for editors (``bollard schema``,
``GET /api/schema/config.json``; DESIGN §2).

It is generated from the same Pydantic model that validates the manifest, so the two
cannot drift; the cross-field rules are not expressible in it and are checked at load.
"""

from __future__ import annotations

from typing import Any

from bollard.platform.manifest.models import Manifest


def json_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), as served at ``/api/schema/config.json``."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://bollard.dev/schema/config.json"
    schema["title"] = "Bollard integration manifest (config.json)"
    return schema
