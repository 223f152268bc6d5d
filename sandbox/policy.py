"""Compile policy of connector code (DESIGN §3, §4.1).

:func:`compile_connector` compiles a ``connector.py`` with RestrictedPython's
``compile_restricted_exec`` and adds Bollard's own static checks, so every problem
is reported at load with its line number:

- imports only from the allowlist (:mod:`bollard.sandbox.imports`), ``from`` imports
  only of listed members (``from time import sleep`` fails);
- no use of builtins that do not exist in the sandbox and would only fail at run time
  (``open``, ``getattr``, ``type``, ``vars``, ``globals``...; see :data:`UNAVAILABLE`);
- ``execute`` defined at module level; ``test_connection`` (or Tale's
  ``testConnection``) optional.

:func:`make_globals` builds the fresh globals dict of one execution.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_exec

from . import guards
from .ctx import Printer
from .errors import ConnectorCompileError
from .imports import FACADES, IMPORTABLE, facade_members, import_error

MAX_SOURCE_BYTES = 1024 * 1024
ENTRYPOINT = "execute"
TEST_ENTRYPOINTS = ("test_connection", "testConnection")

# Python builtins that connector code does not get. Using one (without defining it)
# is a load error rather than a NameError at run time.
# fmt: off
UNAVAILABLE = frozenset(
    {
        "open", "eval", "exec", "compile", "input", "globals", "locals", "vars", "dir",
        "type", "object", "super", "getattr", "setattr", "delattr", "hasattr",
        "memoryview", "bytearray", "bytes", "exit", "quit", "help", "breakpoint",
        "classmethod", "staticmethod", "property", "aiter", "anext", "copyright",
        "credits", "license", "BaseException", "SystemExit", "KeyboardInterrupt",
        "GeneratorExit", "MemoryError", "ExceptionGroup", "BaseExceptionGroup",
    }
)
# fmt: on

_LINE = re.compile(r"^Line (\d+)")


@dataclass(frozen=True)
class CompiledConnector:
    """A connector that passed the compile policy.

    - ``code``: the restricted module code object (run with :func:`make_globals`);
    - ``filename``: the name used in line numbers (``connector.py``);
    - ``source_hash``: SHA-256 hex digest of the UTF-8 source;
    - ``test_entrypoint``: ``"test_connection"``, ``"testConnection"`` or ``None``;
    - ``warnings``: RestrictedPython's non-fatal remarks, ``Line <n>: ...``.
    """

    code: CodeType
    filename: str
    source_hash: str
    test_entrypoint: str | None
    warnings: list[str] = field(default_factory=list)


def source_hash(source: str) -> str:
    """SHA-256 hex digest of ``source`` encoded as UTF-8."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def _bound_names(tree: ast.Module) -> set[str]:
    """Every name the module binds anywhere (assignments, defs, args, imports...)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _policy_errors(tree: ast.Module) -> list[str]:
    """Bollard's static checks on top of RestrictedPython's."""
    errors: list[str] = []
    bound = _bound_names(tree)
    # RestrictedPython already reports eval(...)/exec(...) calls; don't report twice.
    called = {
        id(n.func)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("eval", "exec")
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in IMPORTABLE:
                    errors.append(f"Line {node.lineno}: {import_error(alias.name)}.")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                errors.append(f"Line {node.lineno}: relative imports are not allowed.")
            elif module not in IMPORTABLE:
                errors.append(f"Line {node.lineno}: {import_error(module)}.")
            else:
                members = facade_members(FACADES[module])
                for alias in node.names:
                    if alias.name != "*" and alias.name not in members:
                        errors.append(
                            f"Line {node.lineno}: cannot import name '{alias.name}' from "
                            f"'{module}' (not available to connectors)."
                        )
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in UNAVAILABLE
            and node.id not in bound
            and id(node) not in called
        ):
            errors.append(f"Line {node.lineno}: '{node.id}' is not available in connectors.")
    return errors


def _defined_at_module_level(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _line_of(message: str) -> int:
    match = _LINE.match(message)
    return int(match.group(1)) if match else 0


def compile_connector(source: str, filename: str = "connector.py") -> CompiledConnector:
    """Compile connector ``source`` under the sandbox policy.

    Returns a :class:`CompiledConnector`. Raises :class:`ConnectorCompileError` whose
    ``errors`` (sorted by line) each read ``Line <n>: <problem>``, e.g.
    ``Line 3: Eval calls are not allowed.``, for syntax errors, everything
    RestrictedPython refuses, imports outside the allowlist, unavailable builtins,
    a missing ``execute`` or a source over :data:`MAX_SOURCE_BYTES` (1 MiB).
    """
    if type(source) is not str:
        raise ConnectorCompileError(["Line 0: the connector source must be text."])
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise ConnectorCompileError([f"Line 0: the connector is larger than {MAX_SOURCE_BYTES} bytes."])
    result = compile_restricted_exec(source, filename=filename)
    errors = list(result.errors)
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        tree = None  # compile_restricted_exec has reported it
    if tree is not None:
        errors.extend(_policy_errors(tree))
        defined = _defined_at_module_level(tree)
        if ENTRYPOINT not in defined:
            errors.append(f"Line 1: {filename} must define execute(ctx) at module level.")
    if errors or result.code is None or tree is None:
        unique = list(dict.fromkeys(errors)) or ["Line 0: the connector could not be compiled."]
        raise ConnectorCompileError(sorted(unique, key=_line_of))
    test_entrypoint = next((n for n in TEST_ENTRYPOINTS if n in defined), None)
    warnings = [w for w in result.warnings if "'printed'" not in w]
    return CompiledConnector(
        code=result.code,
        filename=filename,
        source_hash=source_hash(source),
        test_entrypoint=test_entrypoint,
        warnings=warnings,
    )


def make_globals(print_factory: Callable[..., Printer], filename: str = "connector.py") -> dict[str, Any]:
    """A fresh globals dict for one execution: builtins (a fresh copy), the guard
    hooks RestrictedPython's rewritten code calls, and ``__metaclass__`` for classes.

    ``print_factory(_getattr_)`` must return the object behind ``print`` (see
    :class:`bollard.sandbox.ctx.Printer`). Never pass builtins as the globals dict
    itself: CPython would insert the real ``__builtins__`` (research note, pitfalls).
    """
    return {
        "__builtins__": guards.make_builtins(),
        "__name__": "connector",
        "__file__": filename,
        "__metaclass__": guards.connector_metaclass,
        "_getattr_": guards.guarded_getattr,
        "_getitem_": guards.guarded_getitem,
        "_getiter_": guards.guarded_iter,
        "_write_": guards.guarded_write,
        "_inplacevar_": guards.guarded_inplacevar,
        "_apply_": guards.guarded_apply,
        "_iter_unpack_sequence_": guards.iter_unpack_sequence,
        "_unpack_sequence_": guards.unpack_sequence,
        "_print_": print_factory,
    }
