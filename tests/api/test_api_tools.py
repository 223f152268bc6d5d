"""``GET /api/tools`` and ``bollard tools``: the same definitions, authenticated, every format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bollard.platform.cli import main
from bollard.platform.registry import Registry
from bollard.platform.tools import tool_definitions
from tests.support.api import Api
from tests.support.paths import SHIPPED


@pytest.fixture
def shipped(integrations_dir: Path) -> Path:
    shutil.copytree(SHIPPED, integrations_dir, dirs_exist_ok=True)
    return integrations_dir


@pytest.mark.parametrize("fmt", ["openai", "anthropic", "mcp"])
async def test_route_answers_every_format_for_an_agent(shipped: Path, api: Api, fmt: str) -> None:
    r = await api.get("/api/tools", params={"format": fmt}, role="agent")
    assert r.status_code == 200, r.text
    body = r.json()
    registry = Registry(shipped)
    registry.load_all()
    assert body == {"format": fmt, "tools": tool_definitions(registry, fmt), "count": len(body["tools"])}
    ops = sum(len(e.version.manifest.all_operations) for e in registry.entries() if e.version)
    assert body["count"] == ops


async def test_route_defaults_to_openai_and_refuses_the_unknown(shipped: Path, api: Api) -> None:
    r = await api.get("/api/tools")
    assert r.status_code == 200 and r.json()["format"] == "openai"
    assert r.json()["tools"][0]["type"] == "function"
    r = await api.get("/api/tools", params={"format": "gemini"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert "format" in r.json()["error"]["message"]
    r = await api.get("/api/tools", params={"fromat": "mcp"})
    assert r.status_code == 400 and "fromat" in r.json()["error"]["message"]
    r = await api.client.get("/api/tools")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_route_is_documented(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    responses = doc["paths"]["/api/tools"]["get"]["responses"]
    assert {"200", "400", "401", "500"} <= set(responses)


def test_cli_prints_what_the_route_answers(
    shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "never-created"
    code = main(["tools", "--format", "mcp", "--integrations", str(shipped), "--data-dir", str(data)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    registry = Registry(shipped)
    registry.load_all()
    assert out == {"format": "mcp", "tools": tool_definitions(registry, "mcp"), "count": len(out["tools"])}
    assert not data.exists()  # a read-only command writes nothing
