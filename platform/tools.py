"""Operations as tool definitions for models (DESIGN §9): ``GET /api/tools``, ``bollard tools``.

One tool per operation the caller may call, built from the registry (the serving version
of every integration): :func:`tool_specs` gives the format-neutral :class:`ToolSpec` list,
:func:`tool_definitions` renders it as

- ``openai``: ``{"type": "function", "function": {"name", "description", "parameters",
  "strict"}}`` with the parameters in OpenAI's JSON Schema subset (``openai_schema.py``;
  ``strict`` only where the schema qualifies);
- ``anthropic``: ``{"name", "description", "input_schema"}``;
- ``mcp``: the MCP ``Tool`` (``name``, ``title``, ``description``, ``inputSchema``,
  ``annotations``), annotations derived from the manifest's ``operationType`` and
  ``type`` only, never from an author's text: ``readOnlyHint`` for reads,
  ``destructiveHint`` for writes, ``idempotentHint`` for SQL reads, ``openWorldHint`` for
  REST integrations.

Names are ``<slug>__<operation>`` when that is at most 64 characters of
``[a-zA-Z0-9_-]`` and splits back unambiguously; otherwise the name is shortened and made
of those characters and ends in ``_`` plus 8 hex digits of the SHA-256 of
``slug NUL operation`` (stable across restarts and replicas). :func:`resolve_tool` maps a
name back to ``(slug, operation)``. Tools are sorted by name.

The parameters schema is the operation's normalised one (JSON Schema 2020-12, Tale's
boolean ``required`` already turned into arrays) with ``additionalProperties: false`` at
the root unless the manifest says otherwise, because the execution service refuses
unknown top-level parameters (``params.py``); no parameters is
``{"type": "object", "additionalProperties": false}``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bollard.platform.errors import ApiError, ExecutionError
from bollard.platform.openai_schema import openai_parameters, strict_problems

if TYPE_CHECKING:
    from bollard.platform.manifest import Manifest, Operation
    from bollard.platform.registry import Registry
    from bollard.platform.tokens import Principal

Format = Literal["openai", "anthropic", "mcp"]
FORMATS: tuple[Format, ...] = ("openai", "anthropic", "mcp")

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's and Anthropic's rule (MCP allows more)
MAX_NAME = 64
HASH_CHARS = 8
SEPARATOR = "__"
MAX_DESCRIPTION = 1024  # characters; the author's text is shortened, Bollard's sentences kept
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True)
class ToolSpec:
    """One operation as a tool, format-neutral.

    ``writes``: ``operationType`` is ``write``; ``needs_approval``: a call waits for a
    person (DESIGN §6); ``kind``: the manifest ``type`` (``rest_api`` | ``sql``);
    ``schema``: the parameters schema (module docstring).
    """

    name: str
    slug: str
    operation: str
    title: str
    description: str
    schema: dict[str, Any]
    writes: bool
    needs_approval: bool
    kind: str


def may_call(principal: Principal | None, slug: str, op: Operation) -> bool:
    """Whether ``principal`` may call ``slug``'s ``op``. Today both roles (``admin``,
    ``agent``) may call every operation (DESIGN §8); per-token scopes plug in here."""
    return True


def _digest(slug: str, operation: str) -> str:
    return hashlib.sha256(f"{slug}\0{operation}".encode()).hexdigest()[:HASH_CHARS]


def _plain_name_ok(slug: str, operation: str) -> bool:
    """``slug__operation`` is usable as is: allowed characters, short enough, and the first
    ``__`` is the separator (the slug has no ``__`` and does not end in ``_``)."""
    name = f"{slug}{SEPARATOR}{operation}"
    return bool(NAME_RE.match(name)) and SEPARATOR not in slug and not slug.endswith("_")


def hashed_name(slug: str, operation: str) -> str:
    """The shortened, hash-suffixed name (``<prefix>_<8 hex>``, at most 64 characters)."""
    base = _NOT_NAME_CHAR.sub("_", f"{slug}{SEPARATOR}{operation}")
    return f"{base[: MAX_NAME - HASH_CHARS - 1]}_{_digest(slug, operation)}"


def tool_name(slug: str, operation: str) -> str:
    """The tool name of ``slug``'s ``operation`` (module docstring)."""
    return (
        f"{slug}{SEPARATOR}{operation}" if _plain_name_ok(slug, operation) else hashed_name(slug, operation)
    )


def tool_schema(op: Operation) -> dict[str, Any]:
    """The operation's parameters schema as a tool's input schema (module docstring)."""
    schema = copy.deepcopy(op.params_schema)
    schema["type"] = "object"
    if schema.get("properties") == {}:
        del schema["properties"]
    schema.setdefault("additionalProperties", False)
    return schema


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def effect_sentence(manifest: Manifest, op: Operation) -> str:
    """Bollard's own sentence on what a call does to the world and whether it waits."""
    if op.operation_type == "write":
        first = f"Writes: changes data in {manifest.title}."
    else:
        first = "Reads only; changes nothing."
    if op.needs_approval:
        return (
            f"{first} A call does not run it at once: it waits for a person's approval and answers "
            "a pending approval (its approvalId and status); the result comes once a person approves "
            "it (GET /api/approvals/{approvalId})."
        )
    return first if op.operation_type == "read" else f"{first} It runs without approval."


def describe(manifest: Manifest, op: Operation) -> str:
    """A description for a model: the operation's title and integration, its description
    (the integration's when it has none), then :func:`effect_sentence` (never cut), at
    most 1 024 characters."""
    effect = effect_sentence(manifest, op)
    head = f"{op.title or op.name} ({manifest.title})."
    about = op.description or manifest.description
    room = MAX_DESCRIPTION - len(head) - len(effect) - 2
    parts = [head, _shorten(about, room) if about and room > 20 else "", effect]
    return " ".join(p for p in parts if p)


def tool_specs(registry: Registry, principal: Principal | None = None) -> list[ToolSpec]:
    """Every operation ``principal`` may call (:func:`may_call`) of every integration that
    has a serving version, as :class:`ToolSpec`, sorted by name. Names are unique: pairs
    whose names would coincide both take :func:`hashed_name`."""
    found: list[tuple[str, str, Manifest, Operation]] = []
    for entry in registry.entries():
        if entry.version is None:
            continue
        m = entry.version.manifest
        found.extend(
            (entry.slug, op.name, m, op) for op in m.all_operations if may_call(principal, entry.slug, op)
        )
    names = [tool_name(slug, name) for slug, name, _, _ in found]
    taken = Counter(names)
    specs = []
    for (slug, name, m, op), plain in zip(found, names, strict=True):
        specs.append(
            ToolSpec(
                name=hashed_name(slug, name) if taken[plain] > 1 else plain,
                slug=slug,
                operation=name,
                title=f"{m.title}: {op.title or op.name}",
                description=describe(m, op),
                schema=tool_schema(op),
                writes=op.operation_type == "write",
                needs_approval=op.needs_approval,
                kind=m.type,
            )
        )
    return sorted(specs, key=lambda s: s.name)


def resolve_tool(registry: Registry, name: str, principal: Principal | None = None) -> tuple[str, str]:
    """``(slug, operation)`` of the tool called ``name``.

    Raises :class:`ExecutionError` ``unknown_operation`` when no tool has that name (for
    this caller), naming where to list them.
    """
    for spec in tool_specs(registry, principal):
        if spec.name == name:
            return spec.slug, spec.operation
    raise ExecutionError(
        "unknown_operation",
        f"no tool named '{name[:80]}'; list the tools with GET /api/tools (or bollard tools)",
    )


def openai_tool(spec: ToolSpec) -> dict[str, Any]:
    """``{"type": "function", "function": {"name", "description", "parameters", "strict"}}``."""
    parameters = openai_parameters(spec.schema)
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": parameters,
            "strict": not strict_problems(parameters),
        },
    }


def anthropic_tool(spec: ToolSpec) -> dict[str, Any]:
    """``{"name", "description", "input_schema"}`` (Anthropic's Messages API tool)."""
    return {"name": spec.name, "description": spec.description, "input_schema": spec.schema}


def mcp_annotations(spec: ToolSpec) -> dict[str, Any]:
    """MCP ``ToolAnnotations`` from the manifest's ``operationType`` and ``type`` only."""
    return {
        "title": spec.title,
        "readOnlyHint": not spec.writes,
        "destructiveHint": spec.writes,
        "idempotentHint": not spec.writes and spec.kind == "sql",
        "openWorldHint": spec.kind == "rest_api",
    }


def mcp_tool(spec: ToolSpec) -> dict[str, Any]:
    """The MCP ``Tool``: ``name``, ``title``, ``description``, ``inputSchema``, ``annotations``."""
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "inputSchema": spec.schema,
        "annotations": mcp_annotations(spec),
    }


RENDER = {"openai": openai_tool, "anthropic": anthropic_tool, "mcp": mcp_tool}


def check_format(fmt: str) -> Format:
    """``fmt`` when it is a known format; else :class:`ApiError` ``invalid_request``."""
    if fmt not in RENDER:
        raise ApiError(
            "invalid_request",
            f"format must be one of {', '.join(FORMATS)}, got '{fmt[:40]}'",
            details=[{"path": "query.format", "message": "unknown tool format"}],
        )
    return fmt  # type: ignore[return-value]


def tool_definitions(
    registry: Registry, fmt: str, principal: Principal | None = None
) -> list[dict[str, Any]]:
    """The tools ``principal`` may call, rendered in ``fmt`` (``openai`` | ``anthropic`` |
    ``mcp``), sorted by name. Raises ``invalid_request`` for an unknown format."""
    render = RENDER[check_format(fmt)]
    return [render(spec) for spec in tool_specs(registry, principal)]
