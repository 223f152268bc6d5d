"""``result_json.is_small``: exactly "at most SMALL_NODES values and SMALL_CHARS string
characters" (keys' characters included), whatever the shape (DESIGN §4.6)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from bollard.platform import result_json


def counted(value: Any) -> tuple[int, int]:
    """(values, string characters) of ``value``, counted the plain way."""
    if isinstance(value, str):
        return 1, len(value)
    nodes, chars = 1, 0
    if isinstance(value, dict):
        chars += sum(len(k) for k in value if isinstance(k, str))
        members: Any = value.values()
    elif isinstance(value, list):
        members = value
    else:
        return 1, 0
    for member in members:
        n, c = counted(member)
        nodes, chars = nodes + n, chars + c
    return nodes, chars


class Text(str):
    """A str subclass: counted as a string, not taken for a plain member."""


def shape(rnd: random.Random, depth: int = 0) -> Any:
    r = rnd.random()
    if depth > 4 or r < 0.4:
        return rnd.choice([1, 2.5, True, None, 10**20, "é", "x" * rnd.randint(0, 40), Text("tx"), b"b"])
    if r < 0.7:
        return [shape(rnd, depth + 1) for _ in range(rnd.randint(0, 8))]
    keys: list[Any] = ["k" * rnd.randint(0, 4) + str(i) for i in range(rnd.randint(0, 8))]
    if rnd.random() < 0.1:
        keys.append(7)  # a key that is not a string counts no characters
    return {k: shape(rnd, depth + 1) for k in keys}


@pytest.mark.parametrize(("nodes", "chars"), [(5, 5), (20, 100), (50, 30), (300, 2000)])
def test_is_small_is_the_exact_count_against_both_limits(
    monkeypatch: pytest.MonkeyPatch, nodes: int, chars: int
) -> None:
    monkeypatch.setattr(result_json, "SMALL_NODES", nodes)
    monkeypatch.setattr(result_json, "SMALL_CHARS", chars)
    rnd = random.Random(nodes * 1000 + chars)
    for _ in range(2000):
        value = shape(rnd)
        n, c = counted(value)
        assert result_json.is_small(value) == (n <= nodes and c <= chars), value


def test_a_container_with_more_members_than_the_limit_is_big(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_json, "SMALL_NODES", 10)
    assert result_json.is_small([1] * 9)  # 10 values with the list itself
    assert not result_json.is_small([1] * 10)
    assert not result_json.is_small({"a": list(range(11))})


async def test_a_small_envelope_is_redacted_or_answered_as_the_responses_bytes() -> None:
    from bollard.platform.redact import REDACTED

    secrets = ['se"cr\\et', "k3y"]
    clean = {"success": True, "data": [{"name": "é ok", "n": 1.5}, None], "count": 2}
    body, text = await result_json.redact_envelope(clean, secrets)
    assert body == clean
    assert text == json.dumps(clean, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # a secret in a value (escaped by JSON) or in a key: redacted, the response encodes it
    for leaky in ({"data": {"v": 'x se"cr\\et y'}}, {"data": {"a-k3y-b": 1}}):
        body, text = await result_json.redact_envelope(leaky, secrets)
        assert text is None
        assert "k3y" not in json.dumps(body) and 'se\\"cr' not in json.dumps(body)
        assert REDACTED in json.dumps(body)
    # no secrets: nothing to search, nothing encoded here
    assert await result_json.redact_envelope(clean, []) == (clean, None)
    # what JSON cannot carry is left to the response, as before
    nan = {"data": float("nan")}
    assert (await result_json.redact_envelope(nan, secrets))[1] is None
