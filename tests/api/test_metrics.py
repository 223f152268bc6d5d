"""``/metrics`` (DESIGN §12): admin only, the Prometheus text format, and each family counts
what really happened: calls by integration, operation and outcome, latency, sandbox
workers and kills by reason, egress refusals, SQL truncations, rate-limit refusals,
approvals by state, registry load errors, and callbacks registered by other services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bollard.platform import tokens
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import Api, app_client, local_settings
from tests.support.databases import PG_URL, pg_credentials, unavailable
from tests.support.integrations import rest_manifest, sqlite_manifest, write_integration
from tests.support.jobs import BACKENDS, state_database_url, until
from tests.support.standin import LocalServer, free_port

CONNECTOR = """
BASE = "{base}"

def execute(ctx):
    op = ctx.operation
    if op == "fetch":
        return ctx.http.get(BASE + "/json").json()["method"]
    if op == "offlist":
        return ctx.http.get("https://example.org/").status
    if op == "spin":
        while True:
            pass
    return "ok"
"""

SEED = "CREATE TABLE IF NOT EXISTS t (n INTEGER); INSERT INTO t VALUES (1), (2), (3);"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition body, by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def client(
    server: LocalServer, integrations_dir: Path, data_dir: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    write_integration(
        integrations_dir,
        "svc",
        manifest=rest_manifest(
            allowedHosts=[server.url],
            operations=[
                {"name": "fetch"},
                {"name": "offlist"},
                {"name": "spin", "timeoutMs": 3000, "limits": {"cpuTimeMs": 300}},
                {"name": "limited", "rateLimit": {"requests": 1, "perSeconds": 60}},
                {"name": "send", "operationType": "write"},
            ],
        ),
        connector=CONNECTOR.format(base=server.url),
    )
    write_integration(
        integrations_dir,
        "rows",
        manifest=sqlite_manifest(
            "rows.db",
            [{"name": "all", "query": "SELECT n FROM t ORDER BY n"}],
            security={"maxResultRows": 2},
        ),
        connector=None,
        extra={"seed.sql": SEED},
    )
    write_integration(integrations_dir, "broken", manifest="[1, 2")
    settings = local_settings(integrations_dir, data_dir)
    async with app_client(settings) as (c, rt):
        yield c, rt


async def call(c: httpx.AsyncClient, slug: str, op: str) -> httpx.Response:
    return await c.post(f"/api/integrations/{slug}/operations/{op}", json={"params": {}})


async def test_metrics_need_an_admin_token(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, rt = client
    assert (await c.get("/metrics", headers={"Authorization": ""})).status_code == 401
    agent = await tokens.create_token(rt.db, "agent")
    r = await c.get("/metrics", headers={"Authorization": f"Bearer {agent}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE bollard_executions_total counter" in r.text


async def test_each_family_counts_what_happened(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, _ = client
    assert (await call(c, "svc", "fetch")).status_code == 200
    assert (await call(c, "svc", "fetch")).status_code == 200
    assert (await call(c, "svc", "offlist")).json()["error"]["code"] == "host_not_allowed"
    assert (await call(c, "svc", "spin")).json()["error"]["code"] == "limit_exceeded"
    assert (await call(c, "svc", "limited")).status_code == 200
    assert (await call(c, "svc", "limited")).status_code == 429
    assert (await call(c, "svc", "send")).status_code == 202
    assert (await call(c, "rows", "all")).json()["truncated"] is True
    assert (await call(c, "made-up-slug", "x")).status_code == 404
    assert (await call(c, "svc", "made-up-op")).status_code == 404

    text = (await c.get("/metrics")).text
    ex = "bollard_executions_total"
    assert value(text, ex, integration="svc", operation="fetch", outcome="succeeded") == 2
    assert value(text, ex, integration="svc", operation="offlist", outcome="host_not_allowed") == 1
    assert value(text, ex, integration="svc", operation="spin", outcome="limit_exceeded") == 1
    assert value(text, ex, integration="svc", operation="limited", outcome="rate_limited") == 1
    assert value(text, ex, integration="svc", operation="send", outcome="pending_approval") == 1
    assert value(text, ex, integration="rows", operation="all", outcome="succeeded") == 1
    # made-up names never become label values (a caller cannot mint series)
    assert value(text, ex, integration="_unknown", operation="_unknown", outcome="unknown_integration") == 1
    assert value(text, ex, integration="_unknown", operation="_unknown", outcome="unknown_operation") == 1
    assert "made-up" not in text
    assert "_created" not in text  # no creation-time series beside each counter
    hist = "bollard_execution_duration_seconds_count"
    assert value(text, hist, integration="svc", operation="fetch") == 2
    assert (
        value(
            text, "bollard_execution_duration_seconds_bucket", integration="svc", operation="fetch", le="+Inf"
        )
        == 2
    )
    assert value(text, "bollard_egress_refusals_total", reason="host_not_allowed") == 1
    assert value(text, "bollard_rate_limit_refusals_total", integration="svc", reason="rate_limited") == 1
    assert value(text, "bollard_sql_truncations_total", integration="rows", reason="rows") == 1
    assert value(text, "bollard_approvals", state="pending") == 1
    assert value(text, "bollard_approvals", state="succeeded") == 0
    assert value(text, "bollard_integrations", status="error") == 1
    assert value(text, "bollard_integrations", status="ready") == 2
    assert value(text, "bollard_registry_load_errors_total", integration="broken") == 1
    # the spin's worker was killed for its CPU limit; the fetch worker is still alive
    assert value(text, "bollard_sandbox_kills_total", reason="limit_exceeded") == 1
    assert value(text, "bollard_sandbox_workers") >= 1
    assert value(text, "bollard_sandbox_busy_slots") == 0


async def test_callbacks_of_other_services_are_read_at_scrape_time(
    client: tuple[httpx.AsyncClient, Runtime],
) -> None:
    c, rt = client
    depth = {"n": 3.0}
    rt.metrics.register_gauge_callback("bollard_outbox_queue_depth", "Jobs waiting", lambda: depth["n"])
    rt.metrics.register_gauge_callback(
        "bollard_outbox_jobs", "Jobs by state", lambda: {("queued",): 2, ("dead",): 1}, ("state",)
    )

    def broken() -> float:
        raise RuntimeError("the outbox is down")

    rt.metrics.register_gauge_callback("bollard_broken", "fails", broken)
    rt.metrics.outbox_retries.labels("webhook").inc()
    text = (await c.get("/metrics")).text
    assert value(text, "bollard_outbox_queue_depth") == 3
    assert value(text, "bollard_outbox_jobs", state="dead") == 1
    assert value(text, "bollard_outbox_retries_total", kind="webhook") == 1
    assert "bollard_broken" not in text  # left out of this scrape; the others still answer
    depth["n"] = 0
    assert value((await c.get("/metrics")).text, "bollard_outbox_queue_depth") == 0
    with pytest.raises(ValueError):
        rt.metrics.register_gauge_callback("x", "y", lambda: 1.0, kind="summary")


async def test_a_scrape_does_not_start_the_sandbox(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, rt = client
    text = (await c.get("/metrics")).text
    assert rt._pool is None
    assert value(text, "bollard_sandbox_workers") == 0


async def test_the_metrics_port_serves_without_a_token(integrations_dir: Path, data_dir: Path) -> None:
    port = free_port()
    settings = Settings(
        integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k", reload=False, metrics_port=port
    )
    async with app_client(settings) as (c, _), httpx.AsyncClient(timeout=10) as plain:
        r = await plain.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and "bollard_executions" in r.text
        assert (await plain.get(f"http://127.0.0.1:{port}/api/integrations")).status_code == 404
        # the API's own /metrics still needs an admin token
        assert (await c.get("/metrics", headers={"Authorization": ""})).status_code == 401
    with pytest.raises(httpx.ConnectError):  # stopped with the app
        await httpx.AsyncClient().get(f"http://127.0.0.1:{port}/metrics")


async def test_a_metrics_port_in_use_fails_the_start_with_the_fix(
    integrations_dir: Path, data_dir: Path
) -> None:
    from bollard.platform.errors import BollardError

    with LocalServer() as busy:
        settings = Settings(
            integrations_dir=integrations_dir,
            data_dir=data_dir,
            secret_key="k",
            reload=False,
            metrics_port=busy.port,
        )
        with pytest.raises(BollardError, match="BOLLARD_METRICS_PORT") as e:
            async with app_client(settings):
                pass
        assert e.value.code == "config_error"


async def test_a_sql_timeout_is_counted(integrations_dir: Path, api: Api, runtime: Runtime) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as e:  # pragma: no cover - depends on the machine
        unavailable(f"PostgreSQL unreachable at {PG_URL}: {e}")
    await conn.close()
    write_integration(
        integrations_dir,
        "slow",
        connector=None,
        manifest={
            "title": "Slow",
            "type": "sql",
            "authMethod": "basic_auth",
            "secretBindings": ["username"],
            "sqlConnectionConfig": {"engine": "postgres", "security": {"queryTimeoutMs": 300}},
            "sqlOperations": [{"name": "nap", "query": "SELECT pg_sleep(5)"}],
        },
    )
    runtime.registry.reload("slow")
    values = pg_credentials()
    assert (await api.put("/api/integrations/slow/credentials", json={"values": values})).status_code == 200
    r = await api.post("/api/integrations/slow/operations/nap", json={"params": {}})
    assert r.json()["error"]["code"] == "timeout", r.text
    text = (await api.get("/metrics")).text
    assert value(text, "bollard_sql_timeouts_total", integration="slow") == 1
    assert (
        value(text, "bollard_executions_total", integration="slow", operation="nap", outcome="timeout") == 1
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_outbox_retries_and_dead_letters_are_counted(backend: str, tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from bollard.platform.jobs import Job, JobSettings, make_job_queue
    from bollard.platform.metrics import Metrics
    from bollard.platform.store.db import create_engine, migrate

    m = Metrics()
    async with state_database_url(backend, tmp_path) as url:
        engine = create_engine(url)
        await migrate(engine)
        q = make_job_queue(engine, JobSettings(max_attempts=3, lease_s=1.0, backoff_base_s=0.01, poll_s=0.2))
        q.on_failure = m.job_failed
        await q.install()

        async def down(_: Job) -> None:
            raise RuntimeError("receiver down")

        q.handle("webhook.deliver", down)
        await q.enqueue_now("webhook.deliver", {})
        try:
            await q.start()

            async def dead() -> bool:
                return (await q.counts())["dead"] == 1

            await until(dead, "the job to be dead")
        finally:
            await q.stop()
            await engine.dispose()
    text = generate_latest(m.registry).decode()
    assert value(text, "bollard_outbox_retries_total", kind="webhook.deliver") == 2
    assert value(text, "bollard_outbox_dead_total", kind="webhook.deliver") == 1


async def test_outbox_depth_is_read_at_scrape_time(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, rt = client

    async def idle() -> bool:  # the retention sweeps enqueued at start have run
        counts = await rt.jobs.counts()
        return counts["queued"] == counts["running"] == 0

    await until(idle, "the start-up sweeps to run")
    await rt.jobs.enqueue_now("nobody.handles.this", {})  # no handler: it stays queued
    text = (await c.get("/metrics")).text
    assert value(text, "bollard_outbox_jobs", state="queued") == 1
    assert value(text, "bollard_outbox_jobs", state="dead") == 0
