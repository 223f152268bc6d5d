"""``bollard call --params`` refuses what the API refuses (issue 9, item 19): non-finite
numbers (``NaN``, ``Infinity``) and parameters nested deeper than the cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bollard.platform.cli import main
from tests.support.integrations import rest_manifest, write_integration


def setup(tmp_path: Path) -> list[str]:
    m = rest_manifest()
    m["operations"][0]["parametersSchema"]["properties"]["n"] = {"type": "number", "maximum": 10}
    m["operations"][0]["parametersSchema"]["properties"]["meta"] = {"type": "object"}
    write_integration(tmp_path / "i", "echo", manifest=m)
    return ["--integrations", str(tmp_path / "i"), "--data-dir", str(tmp_path / "d")]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_call_refuses_non_finite_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], literal: str
) -> None:
    code = main(["call", "echo", "echo", "--params", f'{{"n": {literal}}}', *setup(tmp_path)])
    out = capsys.readouterr()
    assert code == 1
    assert "params.n" in out.err and literal in out.err and "finite" in out.err
    assert out.out == ""  # nothing ran


def test_call_refuses_deep_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = "{}"
    for _ in range(100):
        deep = f'{{"a": {deep}}}'
    code = main(["call", "echo", "echo", "--params", f'{{"meta": {deep}}}', *setup(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    err = json.loads(out)["error"]
    assert err["code"] == "invalid_params" and err["details"][0]["path"] == "params.meta"
