"""The ``@name`` placeholder compiler for SQL operations (DESIGN §5).

``compile_query`` finds the placeholders with the engine's lexer (lexer.py: literals,
quoted identifiers, comments, ``@@system_variables`` and ``::casts`` are skipped) and
turns each into a SQLAlchemy ``bindparam`` typed from the parameter's JSON Schema, so
values never enter the SQL text. ``find_placeholders``, ``split_statements`` and
``leading_keyword`` are the lexer's, named here too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

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

from bollard.platform.errors import SqlError

from .lexer import Lexicon, find_placeholders, leading_keyword, lexicon, scan, split_statements

__all__ = [
    "CompiledQuery",
    "compile_query",
    "find_placeholders",
    "leading_keyword",
    "split_statements",
]

# Largest magnitude bound as BIGINT; larger integral numbers go as NUMERIC.
_BIGINT_MAX = 2**63 - 1


def _escape_colons(chunk: str) -> str:
    # text() would read `:word` as a bind; `\:` is its documented escape for a literal
    # colon (casts, times inside strings, array slices).
    return chunk.replace(":", "\\:")


def _template(sql: str, lex: Lexicon) -> tuple[str, list[str]]:
    """Rewrite ``@name`` to ``:name`` and escape every other colon, for ``text()``."""
    out: list[str] = []
    names: list[str] = []
    pos = 0
    for kind, start, end in scan(sql, lex):
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
    lex = lexicon(engine)
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
