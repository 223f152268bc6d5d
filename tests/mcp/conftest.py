"""A real ``bollard serve`` over a copy of the shipped integrations for the MCP tests, with
an agent token; its approval wait is short so the "nobody decided" paths end quickly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.paths import SHIPPED
from tests.support.standin import BollardServer


@dataclass
class Served:
    """The server, its folders and tokens; :meth:`api` calls its HTTP API as the admin."""

    server: BollardServer
    integrations: Path
    data_dir: Path
    admin: str
    agent: str

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def confirmed(self) -> list[int]:
        """Ids of hotel reservations that can still be cancelled."""
        r = self.api(
            "POST",
            "/api/integrations/hotel/operations/list_reservations",
            json={"params": {"status": "confirmed"}},
        )
        assert r.status_code == 200, r.text
        return [row["id"] for row in r.json()["data"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("mcp")
    integrations = root / "integrations"
    shutil.copytree(SHIPPED, integrations)
    data_dir = root / "data"
    server = BollardServer(integrations, data_dir, {"BOLLARD_MCP_APPROVAL_WAIT_S": "1"})
    try:
        admin = (data_dir / "admin.token").read_text().strip()
        r = httpx.post(
            f"{server.url}/api/tokens",
            json={"role": "agent", "name": "mcp tests"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        yield Served(server, integrations, data_dir, admin, r.json()["token"])
    finally:
        server.stop()
