"""Mixed load with faults against two real replicas on one PostgreSQL (DESIGN §12): every
call gets the status it must get, both replicas stay alive, and every answered write has
its execution record. The timed 10 000-call version is ``bench/bench_load.py``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx

from tests.support.databases import fresh_pg_state_database, pg_credentials
from tests.support.load import plan, recorded_tags, run_load, start_upstreams, write_integrations
from tests.support.standin import BollardServer, bollard


async def test_mixed_load_with_faults_on_two_replicas(tmp_path: Path) -> None:
    ports = start_upstreams()
    integrations = tmp_path / "integrations"
    write_integrations(integrations, ports)
    async with fresh_pg_state_database() as url:
        env = {
            "BOLLARD_DATABASE_URL": url,
            "BOLLARD_SECRET_KEY": "shared-key",
            "BOLLARD_RELOAD": "false",
            "BOLLARD_ALLOW_PRIVATE_EGRESS": "true",  # the upstreams are on 127.0.0.1
            "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES": "true",
        }
        token = bollard(
            "token", "create", "--role", "admin", "--data-dir", str(tmp_path / "a"), env=env
        ).strip()
        a = BollardServer(integrations, tmp_path / "a", env)
        b = BollardServer(integrations, tmp_path / "b", env)
        try:
            values = pg_credentials()
            r = httpx.put(
                f"{a.url}/api/integrations/pgread/credentials",
                json={"values": values},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            results = await run_load([a.url, b.url], token, plan(240, 0.15), concurrency=16)
            wrong = Counter((r.case.name, r.status, r.code) for r in results if not r.right)
            assert not wrong, wrong
            assert len(results) == 240
            for server in (a, b):
                assert server.proc.poll() is None
                assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            answered = {r.tag for r in results if r.tag is not None and r.status == 200}
            assert answered and answered <= await recorded_tags(a.url, token)
        finally:
            a.stop()
            b.stop()
