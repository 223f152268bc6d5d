"""JSON-friendly result values (DESIGN §5; the rules are in values.py's docstring)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from bollard.platform.sql.values import json_rows, to_json_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.50"), 12.5),
        (Decimal("20.00"), 20.0),
        (Decimal("7"), 7),
        (Decimal("-0.1"), -0.1),
        (Decimal("12345678901234567890.12"), "12345678901234567890.12"),
        (Decimal("123456789012.345678"), "123456789012.345678"),
        (Decimal("1E+3"), 1000),
        (Decimal("NaN"), "NaN"),
        (Decimal("-Infinity"), "-Infinity"),
        (float("inf"), "Infinity"),
        (1.5, 1.5),
        (date(2024, 1, 2), "2024-01-02"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05+00:00"),
        (time(10, 30), "10:30:00"),
        (timedelta(hours=26, minutes=3, seconds=4), "26:03:04"),
        (timedelta(seconds=-90), "-00:01:30"),
        (b"\x00\xffhi", "AP9oaQ=="),
        (memoryview(b"ab"), "YWI="),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ([Decimal("1.5"), date(2024, 1, 1)], [1.5, "2024-01-01"]),
        ({"a": b"x"}, {"a": "eA=="}),
        (True, True),
        (None, None),
    ],
)
def test_to_json_value(value: object, expected: object) -> None:
    assert to_json_value(value) == expected
    json.dumps(to_json_value(value), allow_nan=False)


def test_json_rows_converts_by_column_including_mixed_columns() -> None:
    rows = json_rows(
        ["id", "when", "amount", "mixed"],
        [
            (1, datetime(2024, 1, 1), Decimal("1.25"), "text"),
            (2, None, None, Decimal("2")),
            (3, datetime(2024, 1, 3), Decimal("3.50"), b"\x01"),
        ],
    )
    assert rows == [
        {"id": 1, "when": "2024-01-01T00:00:00", "amount": 1.25, "mixed": "text"},
        {"id": 2, "when": None, "amount": None, "mixed": 2},
        {"id": 3, "when": "2024-01-03T00:00:00", "amount": 3.5, "mixed": "AQ=="},
    ]
    assert json_rows(["a"], []) == []


def test_json_rows_float_columns_finite_kept_non_finite_named() -> None:
    # a column of finite floats passes as it is; one NaN or ±Infinity anywhere in the
    # column still becomes its string (JSON has no such numbers)
    rows = json_rows(
        ["a", "b", "c"],
        [(1.5, 2.0, None), (float("nan"), 3.25, 1), (float("-inf"), None, 2.5)],
    )
    assert rows == [
        {"a": 1.5, "b": 2.0, "c": None},
        {"a": "NaN", "b": 3.25, "c": 1},
        {"a": "-Infinity", "b": None, "c": 2.5},
    ]
    json.dumps(rows, allow_nan=False)


def test_row_budget_counts_the_same_from_columns_as_from_rows() -> None:
    from bollard.platform.sql.values import RowBudget, json_rows_and_columns

    batch = [(i, f"guest {i}", i * 1.25, date(2024, 1, 1 + i % 28), i % 2 == 0, None) for i in range(50)]
    rows, cols = json_rows_and_columns(["id", "name", "amount", "day", "flag", "note"], batch)
    by_rows, by_cols = RowBudget(10**6), RowBudget(10**6)
    assert by_rows.take(rows) == by_cols.take(rows, cols) == rows
    assert (by_rows.used, by_rows.left, by_rows.rows) == (by_cols.used, by_cols.left, by_cols.rows)
    tight_rows, tight_cols = RowBudget(by_rows.used // 2), RowBudget(by_rows.used // 2)
    kept = tight_rows.take(rows)
    assert tight_cols.take(rows, cols) == kept and 0 < len(kept) < len(rows)
    assert tight_rows.exhausted and tight_cols.exhausted
