"""Regular expressions from manifests, run on RE2 (DESIGN §2; issue 9, item 18).

A parameter schema's ``pattern`` and ``patternProperties`` are written by a manifest
author and matched against text an agent sends. Python's ``re`` backtracks, so
``^([a-zA-Z0-9]+)+$`` against 27 ``a``s and a ``!`` holds the event loop for seconds.
RE2 (google-re2) matches in time linear in the input and refuses the constructs that
need backtracking (backreferences, lookaround), which the loader reports as load errors.

- :func:`compile_pattern`: the compiled RE2 program (cached), or :class:`re2.error`;
- :func:`pattern_error`: why RE2 refuses a pattern, in words, or ``None``;
- :func:`schema_patterns`: every ``pattern`` and ``patternProperties`` key of a schema
  with its field path;
- :func:`nested_quantifier`: whether a pattern repeats a group that itself repeats
  (``(x+)+``), the shape of catastrophic backtracking, for a lint warning.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import re2

from bollard.platform.manifest.issues import format_path

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr
MAX_CACHED_PATTERNS = 4096
# Schema keywords whose values are data, not schemas: a "pattern" key inside them is not one.
_DATA_KEYWORDS = frozenset({"default", "examples", "const", "enum"})
# Keywords whose value maps names to schemas: the names are not keywords.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


@functools.lru_cache(maxsize=MAX_CACHED_PATTERNS)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (a ``re2._Regexp``); raises ``re2.error`` when RE2
    cannot compile it. JSON Schema patterns are unanchored: use ``.search``."""
    return re2.compile(pattern, _OPTIONS)


def pattern_error(pattern: str) -> str | None:
    """Why RE2 cannot compile ``pattern`` (a sentence that says how to fix it), or ``None``."""
    try:
        compile_pattern(pattern)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        return (
            f"pattern {pattern[:120]!r} cannot be compiled by RE2, the linear-time engine parameters are "
            f"checked with ({reason}): backreferences (\\1) and lookaround ((?=…), (?!…), (?<=…), (?<!…)) "
            "are not supported; rewrite the pattern without them"
        )
    return None


def _subschemas(schema: Any, path: list[str | int]) -> Iterator[tuple[dict[str, Any], list[str | int]]]:
    """Every schema object in ``schema`` with its path, walked without recursion (a schema
    may be deep). The values of ``properties``, ``$defs``, … are schemas whatever their
    names; a keyword holding data (``default``, ``enum``, …) is not walked."""
    stack: list[tuple[Any, list[str | int], bool]] = [(schema, path, False)]
    while stack:
        node, at, names = stack.pop()
        if isinstance(node, list):
            stack.extend((item, [*at, i], False) for i, item in reversed(list(enumerate(node))))
        elif isinstance(node, dict) and names:
            stack.extend((sub, [*at, str(k)], False) for k, sub in reversed(list(node.items())))
        elif isinstance(node, dict):
            yield node, at
            for key, value in reversed(list(node.items())):
                if key not in _DATA_KEYWORDS and isinstance(value, dict | list):
                    stack.append((value, [*at, str(key)], key in _NAME_MAPS))


def schema_patterns(schema: Any, path: list[str | int]) -> Iterator[tuple[str, str]]:
    """``(field path, pattern)`` for every ``pattern`` value and ``patternProperties`` key
    in ``schema``; a key's path is its ``patternProperties`` object."""
    for node, at in _subschemas(schema, path):
        if isinstance(node.get("pattern"), str):
            yield format_path([*at, "pattern"]), node["pattern"]
        if isinstance(node.get("patternProperties"), dict):
            for name in node["patternProperties"]:
                yield format_path([*at, "patternProperties"]), str(name)


def uses_keyword(schema: Any, keyword: str) -> bool:
    """Whether any schema object in ``schema`` uses ``keyword``."""
    return any(keyword in node for node, _ in _subschemas(schema, []))


def _quantifier_at(pattern: str, i: int) -> tuple[bool, int]:
    """Whether a repeating quantifier (``*``, ``+``, ``{n,}``, ``{n,m}`` with m > 1)
    starts at ``i``; and the index after it."""
    if i >= len(pattern):
        return False, i
    if pattern[i] in "*+":
        return True, i + 1
    if pattern[i] == "{":
        end = pattern.find("}", i)
        if end < 0:
            return False, i
        body = pattern[i + 1 : end]
        lo, sep, hi = body.partition(",")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return False, i
        return (bool(sep) and (hi == "" or int(hi) > 1)) or (not sep and int(lo) > 1), end + 1
    return False, i


def nested_quantifier(pattern: str) -> bool:
    """Whether ``pattern`` repeats a group that contains a repeating quantifier, like
    ``(x+)+``, ``(a*)*`` or ``((ab)+)*``: a backtracking engine takes exponential time on
    such patterns (RE2 does not, but the pattern is still worth rewriting)."""
    groups: list[bool] = []  # per open group: whether it holds a repeat
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "(":
            groups.append(False)
            i += 1
            continue
        if c == ")" and groups:
            inner = groups.pop()
            repeats, i = _quantifier_at(pattern, i + 1)
            if repeats and inner:
                return True
            if groups and (inner or repeats):
                groups[-1] = True
            continue
        end = _atom_end(pattern, i)
        repeats, after = _quantifier_at(pattern, end)
        if repeats and groups:
            groups[-1] = True
        i = after
    return False


def _atom_end(pattern: str, i: int) -> int:
    """The index after the atom at ``i``: an escape (``\\d``), a character class
    (``[^a-z\\]]``) or one character."""
    if pattern[i] == "\\":
        return i + 2
    if pattern[i] != "[":
        return i + 1
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":  # a literal ] first in the class
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1
