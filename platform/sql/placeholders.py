"""The ``@name`` placeholder compiler for SQL operations (DESIGN §5).

A small lexer walks the query and finds ``@name`` placeholders outside string literals
(``'…'`` with ``''``; PostgreSQL ``E'…'`` and MySQL strings with backslash escapes;
dollar quotes ``$$…$$`` / ``$tag$…$tag$``), quoted identifiers (``"…"``, `` `…` ``,
``[…]``), comments (``--``, ``/* … */``; MySQL ``#``), ``@@system_variables`` and
``::casts``. ``compile_query`` turns each placeholder into a SQLAlchemy ``bindparam``
typed from the parameter's JSON Schema, so values never enter the SQL text.

Lexing rules that differ by engine are chosen with ``engine`` (``postgres``, ``mysql``,
``mssql``, ``sqlite`` or None for a neutral reading):

- ``[…]`` quotes an identifier on mssql, sqlite and None only (it is an array subscript
  on PostgreSQL, where ``arr[@i]`` holds a placeholder);
- MySQL: backslash escapes in ``'…'`` and ``"…"``, ``#`` comments, ``--`` needs a space,
  executable comments ``/*! … */`` (a statement starting with one has the leading
  keyword ``"/*!"``);
- PostgreSQL and MSSQL block comments nest; dollar quotes on postgres and None only.

An ``@`` directly after a letter, digit or ``_`` (``user@host``) is not a placeholder.
Unterminated literals or comments run to the end of the text (the database reports them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from bollard.platform.errors import SqlError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Numeric,
    String,
    Time,
    bindparam,
    text,
)
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeEngine

__all__ = [
    "CompiledQuery",
    "compile_query",
    "find_placeholders",
    "leading_keyword",
    "split_statements",
]

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
# Largest magnitude bound as BIGINT; larger integral numbers go as NUMERIC.
_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class _Lexicon:
    backslash_strings: bool = False
    hash_comments: bool = False
    bracket_identifiers: bool = True
    nested_comments: bool = False
    dollar_quotes: bool = True
    dash_comment_needs_space: bool = False
    # MySQL/MariaDB run the text of /*! … */ and /*M! … */ (unless a version number
    # in it is above the server's): code to a server, a comment to this lexer.
    executable_comments: bool = False


_LEXICONS: dict[str | None, _Lexicon] = {
    None: _Lexicon(),
    "postgres": _Lexicon(bracket_identifiers=False, nested_comments=True),
    "mysql": _Lexicon(
        backslash_strings=True,
        hash_comments=True,
        bracket_identifiers=False,
        dollar_quotes=False,
        dash_comment_needs_space=True,
        executable_comments=True,
    ),
    "mssql": _Lexicon(nested_comments=True, dollar_quotes=False),
    "sqlite": _Lexicon(dollar_quotes=False),
}


def _lexicon(engine: str | None) -> _Lexicon:
    try:
        return _LEXICONS[engine]
    except KeyError:
        raise ValueError(f"unknown SQL engine {engine!r}") from None


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the literal opened at ``sql[i]``; a doubled quote escapes it."""
    n = len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(sql: str, i: int, nested: bool) -> int:
    n = len(sql)
    depth = 1
    j = i + 2
    while j < n:
        if sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        elif nested and sql.startswith("/*", j):
            depth += 1
            j += 2
        else:
            j += 1
    return n


def _skip_line(sql: str, i: int) -> int:
    end = sql.find("\n", i)
    return len(sql) if end < 0 else end + 1


def _scan(sql: str, lex: _Lexicon) -> Iterator[tuple[str, int, int]]:
    """Yield ``("placeholder", start, end)`` and ``(";", start, end)`` events.

    Everything else (literals, identifiers, comments, code) is skipped; callers treat
    the gaps between events as verbatim text.
    """
    n = len(sql)
    i = 0
    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "'":
            i = _skip_quoted(sql, i, "'", lex.backslash_strings)
        elif c == '"':
            i = _skip_quoted(sql, i, '"', lex.backslash_strings)
        elif c == "`":
            i = _skip_quoted(sql, i, "`", False)
        elif c == "[" and lex.bracket_identifiers:
            end = sql.find("]", i + 1)
            # `]]` escapes a bracket inside […]
            while end >= 0 and sql.startswith("]]", end):
                end = sql.find("]", end + 2)
            i = n if end < 0 else end + 1
        elif (
            c == "-"
            and nxt == "-"
            and (not lex.dash_comment_needs_space or i + 2 >= n or sql[i + 2].isspace())
            or c == "#"
            and lex.hash_comments
        ):
            i = _skip_line(sql, i)
        elif c == "/" and nxt == "*":
            i = _skip_block_comment(sql, i, lex.nested_comments)
        elif c == "$" and lex.dollar_quotes:
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                close = sql.find(m.group(0), m.end())
                i = n if close < 0 else close + len(m.group(0))
            else:
                i += 1
        elif c == "@":
            if i > 0 and (_is_word(sql[i - 1]) or sql[i - 1] == "$"):
                i += 1  # `user@host`: part of a word, not a placeholder
            elif nxt == "@":
                # @@system_variable: skip the marker and its name
                j = i + 2
                while j < n and _is_word(sql[j]):
                    j += 1
                i = j
            elif nxt and (nxt.isalpha() or nxt == "_"):
                j = i + 2
                while j < n and _is_word(sql[j]):
                    j += 1
                yield ("placeholder", i, j)
                i = j
            else:
                i += 1
        elif c == ";":
            yield (";", i, i + 1)
            i += 1
        elif _is_word(c):
            # A whole word (identifier, keyword, number); `$` may continue identifiers.
            j = i + 1
            while j < n and (_is_word(sql[j]) or sql[j] == "$"):
                j += 1
            e_string = j - i == 1 and c in "eE" and j < n and sql[j] == "'"
            # PostgreSQL E'…' strings take backslash escapes
            i = _skip_quoted(sql, j, "'", True) if e_string else j
        else:
            i += 1


def find_placeholders(sql: str, *, engine: str | None = None) -> list[str]:
    """Names of the ``@name`` placeholders in ``sql``, unique, in order of first use.

    ``engine`` selects engine-specific lexing (see the module docstring); None reads
    the query neutrally. Raises ValueError for an unknown engine name.
    """
    seen: dict[str, None] = {}
    for kind, start, end in _scan(sql, _lexicon(engine)):
        if kind == "placeholder":
            seen.setdefault(sql[start + 1 : end], None)
    return list(seen)


def split_statements(sql: str, *, engine: str | None = None) -> list[str]:
    """Split ``sql`` at top-level ``;`` into statements, dropping empty ones.

    Semicolons inside literals, identifiers, comments and dollar quotes do not split.
    Statements with bodies of their own (``CREATE TRIGGER … BEGIN …; END``) are not
    recognised and would be split.
    """
    parts: list[str] = []
    start = 0
    for kind, s, e in _scan(sql, _lexicon(engine)):
        if kind == ";":
            parts.append(sql[start:s])
            start = e
    parts.append(sql[start:])
    return [p for p in parts if leading_keyword(p, engine=engine)]


def leading_keyword(sql: str, *, engine: str | None = None) -> str:
    """The first word of a statement, upper-cased, skipping blanks, comments and ``(``.

    Comments are read as ``engine`` reads them (``split_statements``' rules: nested
    block comments on PostgreSQL and SQL Server, ``#`` on MySQL), so the word is the one
    the server starts executing. On MySQL a statement that starts with an executable
    comment (``/*! … */``, ``/*M! … */``) returns ``"/*!"``: whether the server runs
    the comment's text depends on its version. Returns "" when the statement has no
    code at all.
    """
    lex = _lexicon(engine)
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace() or c == "(":
            i += 1
        elif (
            sql.startswith("--", i)
            and (not lex.dash_comment_needs_space or i + 2 >= n or sql[i + 2].isspace())
            or c == "#"
            and lex.hash_comments
        ):
            i = _skip_line(sql, i)
        elif sql.startswith("/*", i):
            if lex.executable_comments and sql.startswith(("/*!", "/*M!"), i):
                return "/*!"
            i = _skip_block_comment(sql, i, lex.nested_comments)
        else:
            j = i
            while j < n and _is_word(sql[j]):
                j += 1
            return sql[i:j].upper() if j > i else c
    return ""


def _escape_colons(chunk: str) -> str:
    # text() would read `:word` as a bind; `\:` is its documented escape for a literal
    # colon (casts, times inside strings, array slices).
    return chunk.replace(":", "\\:")


def _template(sql: str, lex: _Lexicon) -> tuple[str, list[str]]:
    """Rewrite ``@name`` to ``:name`` and escape every other colon, for ``text()``."""
    out: list[str] = []
    names: list[str] = []
    pos = 0
    for kind, start, end in _scan(sql, lex):
        if kind != "placeholder":
            continue
        before = sql[pos:start]
        out.append(_escape_colons(before))
        prev = sql[start - 1] if start > 0 else ""
        if prev in (":", "\\"):
            # text() ignores `:name` right after `:` or `\`; a blank keeps it a bind
            # (`arr[1:@n]` becomes `arr[1: $1]`, same meaning).
            out.append(" ")
        name = sql[start + 1 : end]
        out.append(":" + name)
        if name not in names:
            names.append(name)
        pos = end
    out.append(_escape_colons(sql[pos:]))
    return "".join(out), names


def _json_type(prop: Mapping[str, Any] | None) -> str | None:
    if not isinstance(prop, Mapping):
        return None
    t = prop.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    return t if isinstance(t, str) else None


@dataclass(frozen=True)
class _Param:
    """How one placeholder binds: its JSON Schema type and format."""

    name: str
    json_type: str | None
    fmt: str | None

    def sql_type(self, value: Any) -> TypeEngine[Any]:
        t, fmt = self.json_type, self.fmt
        if t == "string":
            if fmt == "date":
                return Date()
            if fmt == "date-time":
                return DateTime()
            if fmt == "time":
                return Time()
            return String()
        if t == "integer":
            return BigInteger()
        if t == "number":
            # Integral JSON numbers bind as BIGINT so `id = @id` keeps using an index
            # on PostgreSQL and LIMIT accepts it; others as exact NUMERIC.
            if isinstance(value, int | float) and _integral(value):
                return BigInteger()
            return Numeric()
        if t == "boolean":
            return Boolean()
        if t in ("object", "array"):
            return String()
        # Undeclared or untyped: follow the value.
        if isinstance(value, bool):
            return Boolean()
        if isinstance(value, int):
            return BigInteger() if abs(value) <= _BIGINT_MAX else Numeric()
        if isinstance(value, float):
            return Float()
        return String()

    def convert(self, value: Any) -> Any:
        """The Python value to bind; raises SqlError("invalid_params")."""
        if value is None:
            return None
        t, fmt = self.json_type, self.fmt
        try:
            if t == "string" and fmt in ("date", "date-time", "time"):
                return _parse_temporal(value, fmt)
            if t == "integer":
                return _to_int(value)
            if t == "number":
                if isinstance(value, bool):
                    raise ValueError("expected a number")
                if isinstance(value, int | float) and _integral(value):
                    return int(value)
                return _to_decimal(value)
            if t == "boolean":
                return _to_bool(value)
            if t in ("object", "array") or isinstance(value, dict | list):
                return value if isinstance(value, str) else json.dumps(value)
            if t == "string":
                return value if isinstance(value, str) else str(value)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("non-finite numbers cannot be bound")
            return value
        except (ValueError, TypeError, InvalidOperation) as exc:
            kind = f"{t} ({fmt})" if fmt else (t or "value")
            raise SqlError("invalid_params", f"parameter {self.name!r}: not a valid {kind}: {exc}") from None


def _integral(value: int | float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer() and abs(value) <= _BIGINT_MAX
    return abs(value) <= _BIGINT_MAX


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite numbers cannot be bound")
        return Decimal(repr(value))  # the JSON text's digits, not the binary expansion
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        d = Decimal(value.strip())
        if not d.is_finite():
            raise ValueError("non-finite numbers cannot be bound")
        return d
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"expected a boolean, got {value!r}")


def _parse_temporal(value: Any, fmt: str) -> date | datetime | time:
    if fmt == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        return date.fromisoformat(str(value).strip())
    if fmt == "date-time":
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, date):
            dt = datetime(value.year, value.month, value.day)
        else:
            dt = datetime.fromisoformat(str(value).strip())
        if dt.tzinfo is not None:
            # Bound as a naive UTC timestamp: one meaning on every engine.
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        return dt
    t = value if isinstance(value, time) else time.fromisoformat(str(value).strip())
    if t.tzinfo is not None:
        raise ValueError("time zone offsets are not supported for format: time")
    return t


@dataclass(frozen=True)
class BoundStatement:
    """One statement ready to execute: the typed clause and its bind values."""

    clause: TextClause
    values: dict[str, Any]


@dataclass(frozen=True)
class CompiledQuery:
    """A query compiled once per manifest version (DESIGN §5).

    ``names``: the placeholders, in order of first use. ``clause``: the whole query as
    a ``TextClause`` whose bind parameters are typed from the schema (what an omitted
    value binds as). ``statements``: the query split at top-level ``;``, one untyped
    ``TextClause`` template each, for drivers that run one statement per call
    (asyncpg, aiomysql, sqlite); ``bind`` types them per call.
    """

    sql: str
    names: tuple[str, ...]
    clause: TextClause
    template: TextClause
    statements: tuple[TextClause, ...]
    statement_names: tuple[tuple[str, ...], ...]
    statement_keywords: tuple[str, ...]
    params: Mapping[str, _Param]
    _typed_cache: dict[tuple[Any, ...], TextClause] = field(default_factory=dict, repr=False, compare=False)

    def bind_values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Convert caller values to bind values for every placeholder.

        Omitted placeholders bind as None (a typed NULL). ISO date/time strings become
        ``date``/``datetime``/``time``; integers/numbers/booleans are checked.
        Raises SqlError("invalid_params").
        """
        return {n: self.params[n].convert(params.get(n)) for n in self.names}

    def _typed(self, clause: TextClause, names: tuple[str, ...], values: Mapping[str, Any]) -> TextClause:
        types = [self.params[n].sql_type(values.get(n)) for n in names]
        # One typed clause per combination of bind types: SQLAlchemy's compiled cache
        # then finds it without rebuilding the clause on every call.
        key = (id(clause), *(type(t) for t in types))
        typed = self._typed_cache.get(key)
        if typed is None:
            typed = clause.bindparams(*(bindparam(n, type_=t) for n, t in zip(names, types, strict=True)))
            if len(self._typed_cache) < 64:
                self._typed_cache[key] = typed
        return typed

    def bind(self, params: Mapping[str, Any], *, split: bool = True) -> list[BoundStatement]:
        """Statements with typed bind parameters and their values, ready to execute.

        ``split=False`` returns the whole query as one statement (a T-SQL batch).
        Raises SqlError("invalid_params").
        """
        values = self.bind_values(params)
        if not split:
            return [BoundStatement(self._typed(self.template, self.names, values), values)]
        return [
            BoundStatement(self._typed(stmt, names, values), {n: values[n] for n in names})
            for stmt, names in zip(self.statements, self.statement_names, strict=True)
        ]


def compile_query(sql: str, schema: Mapping[str, Any] | None, *, engine: str | None = None) -> CompiledQuery:
    """Compile a manifest query into typed SQLAlchemy clauses.

    ``schema`` is the operation's ``parametersSchema`` (``properties`` read for each
    placeholder's ``type``/``format``: ``string``+``date``/``date-time``/``time`` →
    Date/DateTime/Time, ``integer`` → BigInteger, ``number`` → BigInteger for integral
    values else Numeric, ``boolean`` → Boolean, ``object``/``array`` → String holding
    JSON, else String; a placeholder missing from the schema binds by its value's
    type). Raises ValueError for an unknown engine.
    """
    lex = _lexicon(engine)
    props = (schema or {}).get("properties") or {}
    whole, names = _template(sql, lex)
    params = {n: _Param(n, _json_type(props.get(n)), (props.get(n) or {}).get("format")) for n in names}
    stmts: list[TextClause] = []
    stmt_names: list[tuple[str, ...]] = []
    keywords: list[str] = []
    for part in split_statements(sql, engine=engine):
        tmpl, part_names = _template(part, lex)
        stmts.append(text(tmpl))
        stmt_names.append(tuple(part_names))
        keywords.append(leading_keyword(part, engine=engine))
    template = text(whole)
    typed = template.bindparams(*(bindparam(n, type_=params[n].sql_type(None)) for n in names))
    return CompiledQuery(
        sql=sql,
        names=tuple(names),
        clause=typed,
        template=template,
        statements=tuple(stmts),
        statement_names=tuple(stmt_names),
        statement_keywords=tuple(keywords),
        params=params,
    )
