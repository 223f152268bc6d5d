"""Load-time checks of a TypeScript/JavaScript connector (DESIGN §3, §4.1), on the host.

:func:`check_source` parses ``connector.ts`` / ``connector.js`` with tree-sitter's
TypeScript grammar (a superset of JavaScript's) and fails with
:class:`~bollard.sandbox.errors.ConnectorCompileError`, each message with its line, for:

- a syntax error (the worker's Deno parse at load reports anything this grammar accepts
  and Deno does not, also with its line);
- ``import`` in any form (statements, ``import(…)``, ``import.meta``), ``export``, and
  calls of ``require``: a connector gets nothing but ``ctx`` (Tale refuses them too);
- no entry point: neither a ``connector`` object with ``execute`` nor a top-level
  ``execute`` function (when ``connector`` is not an object literal it is checked at run
  time instead).

It also reports what the lints need (:class:`CheckedSource`): Tale's ``operations`` array,
the literal keys of ``secrets.get(…)`` and the literal URLs, each with its line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ..errors import ConnectorCompileError

MAX_SOURCE_BYTES = 1024 * 1024
MAX_ERRORS = 20
URL_RE = re.compile(r"^https?://[^/\s?#'\"`$]+", re.I)
CONNECTOR_DECLARATIONS = ("lexical_declaration", "variable_declaration")


@dataclass(frozen=True)
class CheckedSource:
    """A JS/TS connector that passed :func:`check_source`.

    - ``filename``: ``connector.ts`` or ``connector.js`` (line numbers refer to it);
    - ``source_hash``: SHA-256 hex digest of the UTF-8 source;
    - ``test_entrypoint``: ``"testConnection"`` when one is defined, else ``None``;
    - ``operations``: Tale's ``connector.operations`` array when it is a literal list of
      strings, else ``None``; ``operations_line`` its line;
    - ``secret_keys``: ``(line, key)`` of every ``….secrets.get('key')`` with a literal key;
    - ``urls``: ``(line, url)`` of every string literal or template starting with a URL.
    """

    filename: str
    source_hash: str
    test_entrypoint: str | None
    operations: tuple[str, ...] | None = None
    operations_line: int = 0
    secret_keys: tuple[tuple[int, str], ...] = ()
    urls: tuple[tuple[int, str], ...] = field(default=())


@cache
def _parser() -> Any:
    import tree_sitter_typescript
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_typescript.language_typescript()))


def _line(node: Any) -> int:
    return int(node.start_point[0]) + 1


def _text(node: Any) -> str:
    return bytes(node.text).decode("utf-8", "replace")


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _syntax_errors(root: Any, filename: str) -> list[str]:
    errors: list[str] = []
    for node in _walk(root):
        if node.is_missing:
            errors.append(f"{filename} line {_line(node)}: syntax error: missing {node.type!r}")
        elif node.type == "ERROR":
            near = _text(node).strip().splitlines()[0][:40] if _text(node).strip() else ""
            errors.append(f"{filename} line {_line(node)}: syntax error near {near!r}")
        if len(errors) >= MAX_ERRORS:
            break
    return errors


def _refused(root: Any, filename: str) -> list[str]:
    errors: list[str] = []
    for node in _walk(root):
        kind = node.type
        if kind == "import" and node.child_count == 0:
            errors.append(
                f"{filename} line {_line(node)}: import is not available in connectors; "
                "a connector gets everything through ctx (ctx.http, ctx.secrets, ctx.files)"
            )
        elif kind in ("export_statement", "export"):
            if kind == "export_statement":
                errors.append(
                    f"{filename} line {_line(node)}: export is not supported; define "
                    "`const connector = {execute, testConnection}` or top-level functions instead"
                )
        elif kind == "call_expression":
            function = node.child_by_field_name("function")
            if function is not None and function.type == "identifier" and _text(function) == "require":
                errors.append(
                    f"{filename} line {_line(node)}: require() is not available in connectors; "
                    "a connector gets everything through ctx"
                )
        if len(errors) >= MAX_ERRORS:
            break
    return errors


def _string_value(node: Any) -> str | None:
    if node.type == "string":
        return "".join(_text(c) for c in node.children if c.type in ("string_fragment", "escape_sequence"))
    return None


def _connector_object(root: Any) -> tuple[Any | None, bool]:
    """The object literal of a top-level ``const/let/var connector = {…}``, and whether a
    top-level ``connector`` is declared at all."""
    for statement in root.children:
        if statement.type not in CONNECTOR_DECLARATIONS:
            continue
        for declarator in statement.children:
            if declarator.type != "variable_declarator":
                continue
            name = declarator.child_by_field_name("name")
            if name is None or _text(name) != "connector":
                continue
            value = declarator.child_by_field_name("value")
            while value is not None and value.type in (
                "parenthesized_expression",
                "as_expression",
                "satisfies_expression",
            ):
                value = value.named_children[0] if value.named_children else None
            return (value if value is not None and value.type == "object" else None), True
    return None, False


def _members(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for member in obj.named_children:
        if member.type in ("pair", "method_definition"):
            key = member.child_by_field_name("key") or member.child_by_field_name("name")
            if key is None:
                continue
            name = _string_value(key) if key.type == "string" else _text(key)
            if name is not None:
                out[name] = member
        elif member.type == "shorthand_property_identifier":
            out[_text(member)] = member
    return out


def _top_level_functions(root: Any) -> set[str]:
    names: set[str] = set()
    for statement in root.children:
        if statement.type == "function_declaration":
            name = statement.child_by_field_name("name")
            if name is not None:
                names.add(_text(name))
        elif statement.type in CONNECTOR_DECLARATIONS:
            for declarator in statement.named_children:
                value = (
                    declarator.child_by_field_name("value")
                    if declarator.type == "variable_declarator"
                    else None
                )
                name = (
                    declarator.child_by_field_name("name")
                    if declarator.type == "variable_declarator"
                    else None
                )
                if (
                    value is not None
                    and name is not None
                    and value.type in ("arrow_function", "function_expression", "function")
                ):
                    names.add(_text(name))
    return names


def _operations(members: dict[str, Any]) -> tuple[tuple[str, ...] | None, int]:
    member = members.get("operations")
    if member is None or member.type != "pair":
        return None, 0
    value = member.child_by_field_name("value")
    if value is None or value.type != "array":
        return None, 0
    names: list[str] = []
    for item in value.named_children:
        text = _string_value(item)
        if text is None:
            return None, 0
        names.append(text)
    return tuple(names), _line(member)


def _secret_keys_and_urls(root: Any) -> tuple[tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]:
    keys: list[tuple[int, str]] = []
    urls: list[tuple[int, str]] = []
    for node in _walk(root):
        if node.type == "call_expression":
            function = node.child_by_field_name("function")
            arguments = node.child_by_field_name("arguments")
            if (
                function is not None
                and function.type == "member_expression"
                and _text(function.child_by_field_name("property") or function) == "get"
                and _text(function.child_by_field_name("object") or function).endswith("secrets")
                and arguments is not None
                and arguments.named_children
            ):
                key = _string_value(arguments.named_children[0])
                if key is not None:
                    keys.append((_line(node), key))
        elif node.type == "string":
            text = _string_value(node) or ""
            match = URL_RE.match(text)
            if match:
                urls.append((_line(node), match.group(0)))
        elif node.type == "template_string":
            fragments = [c for c in node.children if c.type != "`"]
            if fragments and fragments[0].type == "string_fragment":
                text = _text(fragments[0])
                match = URL_RE.match(text)
                # "https://${host}/x": the host is not literal
                rest = text.split("://", 1)[-1]
                if match and (len(fragments) == 1 or re.search(r"[/?#]", rest)):
                    urls.append((_line(node), match.group(0)))
    return tuple(keys), tuple(urls)


def source_hash(source: str) -> str:
    """SHA-256 hex digest of the UTF-8 source."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def check_source(source: str, filename: str = "connector.ts") -> CheckedSource:
    """Check a JS/TS connector (see the module docstring). Raises
    :class:`ConnectorCompileError` with every problem, each naming the file and line."""
    raw = source.encode("utf-8", "replace")
    if len(raw) > MAX_SOURCE_BYTES:
        raise ConnectorCompileError([f"{filename} is larger than {MAX_SOURCE_BYTES} bytes"])
    root = _parser().parse(raw).root_node
    errors = _syntax_errors(root, filename) if root.has_error else []
    errors += _refused(root, filename)
    if errors:
        raise ConnectorCompileError(errors[:MAX_ERRORS])
    obj, declared = _connector_object(root)
    functions = _top_level_functions(root)
    members = _members(obj) if obj is not None else {}
    if obj is not None:
        has_execute = "execute" in members
        test = "testConnection" if "testConnection" in members else None
    else:
        has_execute = "execute" in functions or declared
        test = "testConnection" if "testConnection" in functions else None
    if not has_execute:
        raise ConnectorCompileError(
            [
                f"{filename}: no entry point: define `const connector = {{ execute(ctx) {{ … }} }}` "
                "(optionally with testConnection) or a top-level `function execute(ctx)`"
            ]
        )
    operations, operations_line = _operations(members)
    keys, urls = _secret_keys_and_urls(root)
    return CheckedSource(
        filename=filename,
        source_hash=source_hash(source),
        test_entrypoint=test,
        operations=operations,
        operations_line=operations_line,
        secret_keys=keys,
        urls=urls,
    )
