"""Results sized for models (DESIGN §9): valid JSON under the cap, cut where it is big."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bollard.platform.model_results import (
    DEFAULT_MAX_CHARS,
    MIN_MAX_CHARS,
    cap_for_model,
    model_json,
    model_text,
    resolve_cap,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=40), children, max_size=30)
    ),
    max_leaves=120,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values, cap=st.integers(min_value=0, max_value=3000))
def test_output_always_parses_and_is_under_the_cap(value: Any, cap: int) -> None:
    out = cap_for_model(value, cap)
    text = model_json(out)
    assert len(text) <= max(cap, MIN_MAX_CHARS)
    assert json.loads(text) == out
    if len(model_json(value)) <= max(cap, MIN_MAX_CHARS):
        assert out == value  # what fits is not touched
    else:
        assert out["truncated"] is True
    assert model_text(value, cap) == text


@settings(max_examples=50, deadline=None)
@given(depth=st.integers(min_value=1, max_value=3000))
def test_absurd_nesting_is_cut_too(depth: int) -> None:
    value: Any = "x" * 50
    for _ in range(depth):
        value = [value]
    out = cap_for_model(value, 200)
    assert len(model_json(out)) <= 200
    json.loads(model_json(out))


def envelope(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"success": True, "integration": "hotel", "operation": "list", "data": rows, "count": len(rows)}


def test_long_arrays_keep_their_head_and_say_how_many_were_dropped() -> None:
    rows = [{"id": i, "name": f"guest {i}"} for i in range(5000)]
    out = cap_for_model(envelope(rows))
    assert len(model_json(out)) <= DEFAULT_MAX_CHARS
    assert out["success"] is True and out["count"] == 5000 and out["truncated"] is True
    kept = [r for r in out["data"] if isinstance(r, dict)]
    assert kept == rows[: len(kept)] and len(kept) > 100  # as many as fit, not a fixed few
    assert out["data"][-1] == f"… {5000 - len(kept)} more items not shown"
    assert out["truncation"]["droppedItems"] == 5000 - len(kept)
    assert out["truncation"]["originalChars"] == len(model_json(envelope(rows)))


def test_long_strings_are_shortened_and_the_rest_kept() -> None:
    value = {"success": True, "data": {"text": "a" * 50_000, "id": 7}}
    out = cap_for_model(value, 5000)
    assert out["data"]["id"] == 7 and out["data"]["text"].startswith("a" * 100)
    assert out["data"]["text"].endswith("more characters]") and out["truncation"]["shortenedStrings"] == 1


def test_per_call_cap_only_lowers_the_operator_ceiling() -> None:
    assert resolve_cap(None) == DEFAULT_MAX_CHARS
    assert resolve_cap(500, 20_000) == 500
    assert resolve_cap(50_000, 20_000) == 20_000
    assert resolve_cap(1, 20_000) == MIN_MAX_CHARS


def test_non_objects_are_wrapped() -> None:
    out = cap_for_model(list(range(10_000)), 1000)
    assert out["truncated"] is True and out["value"][0] == 0
    assert out["value"][-1].endswith("more items not shown")
