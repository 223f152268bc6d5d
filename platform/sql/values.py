"""Driver values and rows as JSON-friendly values (DESIGN §5; docs/sql-runner.md, Values).

Dates, times and date-times become ISO 8601 strings, intervals/``TIME`` durations
``[-]HH:MM:SS[.ffffff]``, bytes base64, UUIDs and other objects strings. A ``Decimal``
becomes an int when it has no fraction digits, a float when it converts without changing
its digits (``12.50`` → ``12.5``), otherwise its exact string; non-finite numbers become
``"NaN"``/``"Infinity"``/``"-Infinity"``.

``RowBudget`` is the result's byte budget (DESIGN §5): rows are counted as they are
converted, and the rows past the budget are dropped (``truncatedReason: "bytes"``).
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
from typing import Any

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "FIRST_BATCH_ROWS",
    "RowBudget",
    "column_names",
    "json_rows",
    "json_rows_and_columns",
    "to_json_value",
]

DEFAULT_MAX_RESULT_BYTES = 5 * 1024 * 1024  # bytes (DESIGN §5)
# Rows fetched in a statement's first round trip: bounds the memory a result of huge
# rows can take before its row sizes are known; later batches fit the byte budget.
FIRST_BATCH_ROWS = 32

_PLAIN = (str, int, bool, type(None))


def _decimal(d: Decimal) -> Any:
    s = str(d)
    # Fast path: at most 15 characters means at most 15 significant digits, which a
    # float holds exactly (its repr gives the same digits back).
    if len(s) <= 15 and "E" not in s and "N" not in s and "I" not in s:
        return float(s) if "." in s else int(s)
    if not d.is_finite():
        return "NaN" if d.is_nan() else ("Infinity" if d > 0 else "-Infinity")
    if d.as_tuple().exponent == 0:
        return int(d)
    f = float(d)
    return f if Decimal(repr(f)) == d else str(d)


def _duration(td: timedelta) -> str:
    sign = "-" if td < timedelta(0) else ""
    td = abs(td)
    micros = td.microseconds
    total = td.days * 86400 + td.seconds
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return out + (f".{micros:06d}" if micros else "")


def to_json_value(value: Any) -> Any:
    """``value`` as something ``json.dumps`` accepts, following the module's rules
    (nested lists, tuples and dicts converted element by element)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return str(value)


def column_names(keys: list[str]) -> list[str]:
    """Unique, non-empty column names: ``id, id`` → ``id, id_2``; blank → ``column_3``."""
    out: list[str] = []
    seen: set[str] = set()
    for i, k in enumerate(keys, start=1):
        base = k or f"column_{i}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        out.append(name)
    return out


_PLAIN_TYPES = frozenset(_PLAIN)
# One converter per Python type, for columns whose values all share that type.
_BY_TYPE: dict[type[Any], Callable[[Any], Any]] = {
    Decimal: _decimal,
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
    timedelta: _duration,
    uuid.UUID: str,
}


_NONE = type(None)


_PLAIN_OR_FLOAT = _PLAIN_TYPES | {float}


def _column_converter(values: tuple[Any, ...]) -> Callable[[Any], Any] | None:
    """None when a column needs no conversion, else a function for its values."""
    kinds = set(map(type, values))
    if kinds <= _PLAIN_TYPES:
        return None
    # Floats pass as they are unless one is NaN or ±Infinity: one C-level pass over the
    # column instead of to_json_value per value (a third of a 100-row SQLite read)
    if kinds <= _PLAIN_OR_FLOAT and all(map(math.isfinite, [v for v in values if type(v) is float])):
        return None
    nullable = _NONE in kinds
    kinds.discard(_NONE)
    if len(kinds) == 1:
        fast = _BY_TYPE.get(next(iter(kinds)))
        if fast is not None:
            return (lambda v: None if v is None else fast(v)) if nullable else fast
    return to_json_value


def json_rows(columns: list[str], batch: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows (sequences of ``len(columns)`` values) as JSON-friendly dicts keyed by
    ``columns``; converts column by column so plain columns (str, int, bool, None) cost
    nothing."""
    return json_rows_and_columns(columns, batch)[0]


def json_rows_and_columns(
    columns: list[str], batch: Sequence[Any]
) -> tuple[list[dict[str, Any]], list[Sequence[Any]]]:
    """:func:`json_rows` and the same converted values column by column (one sequence
    per column, in row order), which ``RowBudget.take`` sizes without transposing the
    dicts again."""
    if not batch:
        return [], []
    cols: list[Any] = list(zip(*batch, strict=True))
    converted = False
    for i, col in enumerate(cols):
        conv = _column_converter(col)
        if conv is not None:
            cols[i] = list(map(conv, col))
            converted = True
    if not converted:  # the rows as they are: no second transposition
        return list(map(dict, map(zip, repeat(columns), batch))), cols
    # zip called through map: every row has one value per column, and a keyword
    # argument (strict=) per row would cost a sixth of the conversion
    return list(map(dict, map(zip, repeat(columns), zip(*cols, strict=True)))), cols


def _value_bytes(value: Any) -> int:
    """About the bytes ``value`` takes in the JSON answer (UTF-8)."""
    if isinstance(value, str):
        return 2 + (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass")))
    if value is None or isinstance(value, bool | int | float):
        return 8 if not isinstance(value, int) or -(10**7) < value < 10**7 else len(str(value))
    return len(json.dumps(value, default=str))


_FIXED_SIZE_TYPES = frozenset({float, bool, _NONE})
_INT_ONLY = frozenset({int})


def _column_bytes(values: Sequence[Any]) -> int:
    """``sum(map(_value_bytes, values))``, column-wise for the common homogeneous
    columns (one C-level pass instead of a Python call per value)."""
    kinds = set(map(type, values))
    if kinds == {str}:
        joined = "".join(values)
        n = len(joined) if joined.isascii() else len(joined.encode("utf-8", "surrogatepass"))
        return 2 * len(values) + n
    if kinds <= _FIXED_SIZE_TYPES:
        return 8 * len(values)
    if kinds == _INT_ONLY:  # ids: no filtering copy
        if min(values) > -(10**7) and max(values) < 10**7:
            return 8 * len(values)
    elif kinds <= _FIXED_SIZE_TYPES | _INT_ONLY:
        ints = [v for v in values if type(v) is int]
        if min(ints) > -(10**7) and max(ints) < 10**7:
            return 8 * len(values)
    return sum(map(_value_bytes, values))


class RowBudget:
    """The byte budget of one statement's result (``max_bytes``, bytes of JSON-friendly
    values and their column names).

    ``take(rows)`` keeps the leading rows that fit and sets ``exhausted`` when one did
    not; ``next_batch(wanted)`` is how many rows to fetch next so that a batch of rows
    like those seen so far fits what is left (at least 1, at most ``wanted``).
    """

    __slots__ = ("exhausted", "left", "rows", "used")

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.used = 0
        self.rows = 0
        self.exhausted = False

    def take(
        self, rows: list[dict[str, Any]], columns: Sequence[Sequence[Any]] | None = None
    ) -> list[dict[str, Any]]:
        """``columns``: the rows' values column by column in key order, when the caller
        has them (``json_rows_and_columns``): the same count without transposing."""
        if not rows:
            return rows
        # The whole batch at once, column by column (rows of one statement share their
        # columns); only a batch that does not fit is cut row by row.
        keys = list(rows[0])
        if columns is not None and len(columns) == len(keys):
            overhead = 2 + sum(len(k) + 4 for k in keys)
            total = overhead * len(rows) + sum(map(_column_bytes, columns))
        elif all(len(r) == len(keys) for r in rows):
            overhead = 2 + sum(len(k) + 4 for k in keys)
            total = overhead * len(rows) + sum(_column_bytes(list(map(itemgetter(k), rows))) for k in keys)
        else:
            total = self.left + 1  # rows of different shapes: counted one by one below
        if total <= self.left:
            self.left -= total
            self.used += total
            self.rows += len(rows)
            return rows
        for i, row in enumerate(rows):
            size = 2 + sum(len(k) + 4 + _value_bytes(v) for k, v in row.items())
            if size > self.left:
                self.exhausted = True
                return rows[:i]
            self.left -= size
            self.used += size
            self.rows += 1
        return rows

    def next_batch(self, wanted: int) -> int:
        if wanted <= 0:
            return 1
        if not self.rows:
            return min(wanted, FIRST_BATCH_ROWS)
        average = max(1, self.used // self.rows)
        return max(1, min(wanted, self.left // average + 1))
