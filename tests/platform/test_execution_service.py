"""The execution service's own rules: parameter wording, retries on writes, limits, the
approved path, and Test connection as a logged, rate-limited call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bollard.platform.errors import ExecutionError
from bollard.platform.execution_log import ExecutionFilter
from bollard.platform.invocation import Invocation
from bollard.platform.limits import LimitResolver, lowered
from bollard.platform.retry import with_retries
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration


def typed_manifest(**overrides: Any) -> dict[str, Any]:
    return rest_manifest(
        operations=[
            {
                "name": "book",
                "parametersSchema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "fromDate": {"type": "string", "format": "date"},
                        "nights": {"type": "integer", "minimum": 1, "maximum": 30},
                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                        "room": {
                            "type": "object",
                            "properties": {"kind": {"type": "string"}},
                            "required": ["kind"],
                        },
                    },
                    "required": ["id"],
                },
            },
            {"name": "write_it", "operationType": "write", "requiresApproval": False},
        ],
        **overrides,
    )


@pytest.fixture
def typed(integrations_dir: Path) -> Path:
    return write_integration(integrations_dir, "typed", manifest=typed_manifest())


async def invoke(api: Api, op: str, **body: Any) -> Any:
    return await api.post(f"/api/integrations/typed/operations/{op}", json=body)


async def test_parameter_errors_speak_json_schema(typed: Path, api: Api) -> None:
    r = await invoke(
        api,
        "book",
        params={"id": True, "fromDate": "2026-02-30", "nights": 0, "tags": ["a", "b", "c"], "room": {}},
    )
    assert r.status_code == 400, r.text
    messages = {d["path"]: d["message"] for d in r.json()["error"]["details"]}
    assert messages == {
        "params.id": "expected integer, got boolean",
        "params.fromDate": 'expected a date (YYYY-MM-DD), got "2026-02-30"',
        "params.nights": "expected a number at least 1, got 0",
        "params.tags": "expected an array of at most 2 items, got 3",
        "params.room.kind": "is required",
    }
    # No Python reprs anywhere in the text.
    assert "True" not in r.json()["error"]["message"] and "'" not in r.json()["error"]["message"]


async def test_params_that_are_not_an_object_say_so(typed: Path, runtime: Runtime) -> None:
    runtime.registry.load_all()
    out = await runtime.execution.invoke(Invocation("typed", "book", [1, 2]))  # type: ignore[arg-type]
    assert out.status == 400
    assert out.body["error"]["message"] == "params must be a JSON object, got array"


async def test_retries_on_a_write_are_refused(typed: Path, api: Api) -> None:
    r = await invoke(api, "write_it", params={}, retries=2)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert "retries" in err["message"] and "read operations only" in err["message"]
    ok = await invoke(api, "book", params={"id": 1}, retries=2)
    assert ok.status_code == 200, ok.text


async def test_bad_timeout_is_refused_naming_timeout_ms(typed: Path, api: Api) -> None:
    r = await invoke(api, "book", params={"id": 1}, timeoutMs=0)
    assert r.status_code in (400, 422)
    assert "timeoutMs" in r.text


async def test_approved_runs_take_the_explicit_path(integrations_dir: Path, runtime: Runtime) -> None:
    write_integration(
        integrations_dir,
        "gated",
        manifest=rest_manifest(operations=[{"name": "send", "operationType": "write"}]),
    )
    runtime.registry.load_all()
    held = await runtime.execution.invoke(Invocation("gated", "send", caller="approval"))
    # The audit string no longer decides anything: a caller named "approval" is still held.
    assert held.status == 202
    ran = await runtime.execution.run_approved(Invocation("gated", "send", caller="approval"))
    assert ran.status == 200 and ran.body["success"] is True


async def test_connection_test_is_logged_and_rate_limited(integrations_dir: Path, runtime: Runtime) -> None:
    connector = (
        "def execute(ctx):\n    return 1\n\ndef test_connection(ctx):\n    return {'message': 'fine'}\n"
    )
    write_integration(
        integrations_dir,
        "limited",
        manifest=rest_manifest(connectionConfig={"rateLimit": {"requests": 1, "perSeconds": 60}}),
        connector=connector,
    )
    runtime.registry.load_all()
    report = await runtime.execution.connection_test("limited", caller="cli")
    assert report["ok"] is True, report
    with pytest.raises(ExecutionError) as refused:
        await runtime.execution.connection_test("limited", caller="cli")
    assert refused.value.code == "rate_limited" and refused.value.headers == {
        "Retry-After": refused.value.headers["Retry-After"]
    }
    await runtime.execution_log.flush()
    rows, total = await runtime.execution_log.query(ExecutionFilter(integration="limited"))
    assert total == 2
    assert {(r["operation"], r["status"], r["caller"]) for r in rows} == {
        ("testConnection", "succeeded", "cli"),
        ("testConnection", "failed", "cli"),
    }


def test_one_limit_rule_for_rest_and_sql(tmp_path: Path) -> None:
    assert lowered(30_000, None, 120_000) == 30_000
    assert lowered(30_000, 5_000, 120_000) == 5_000
    assert lowered(30_000, 60_000, 120_000) == 30_000  # the caller only lowers
    assert lowered(300_000, None, 120_000) == 120_000  # the ceiling caps
    from bollard.platform.packages import load_folder

    settings = Settings(
        integrations_dir=tmp_path, data_dir=tmp_path, max_wall_time_ms=20_000, max_query_timeout_ms=4_000,
        max_result_rows=10, max_result_bytes=1_000_000,
    )  # fmt: skip
    resolver = LimitResolver(settings)
    rest = load_folder(
        write_integration(tmp_path, "r", manifest=typed_manifest(connectionConfig={"timeout": 50_000}))
    )
    op = rest.manifest.operation("book")
    assert resolver.sandbox(rest, op, None).wall_time_ms == 20_000
    assert resolver.sandbox(rest, op, 3_000).wall_time_ms == 3_000
    sql = load_folder(
        write_integration(
            tmp_path,
            "s",
            connector=None,
            manifest={
                "title": "S",
                "type": "sql",
                "authMethod": "none",
                "sqlConnectionConfig": {
                    "engine": "sqlite",
                    "options": {"database": "s.db"},
                    "security": {"maxResultRows": 500, "queryTimeoutMs": 60_000},
                },
                "sqlOperations": [{"name": "q", "query": "SELECT 1"}],
            },
        )
    )
    # the SQL byte budget (default 5 MiB) is capped by BOLLARD_MAX_RESULT_BYTES
    assert resolver.sql_security(sql, None) == {
        "maxResultRows": 10,
        "maxResultBytes": 1_000_000,
        "queryTimeoutMs": 4_000,
    }
    assert resolver.sql_security(sql, 1_000)["queryTimeoutMs"] == 1_000
    with pytest.raises(ExecutionError) as bad:
        resolver.sql_security(sql, -1)
    assert bad.value.code == "invalid_request" and "timeoutMs" in bad.value.message


async def test_one_retry_loop_stops_at_the_deadline() -> None:
    attempts: list[int] = []

    async def failing() -> int:
        attempts.append(1)
        raise ConnectionError("down")

    with pytest.raises(TimeoutError):
        await with_retries(
            failing,
            retries=5,
            should_retry=lambda _r, e, _a: 10.0 if e is not None else None,
            deadline=0.0,  # already past: no retry may start
            out_of_time=lambda: TimeoutError("no time left"),
        )
    assert len(attempts) == 1

    results = iter([503, 503, 200])

    async def flaky() -> int:
        return next(results)

    got = await with_retries(flaky, retries=5, should_retry=lambda r, _e, _a: 0.0 if r == 503 else None)
    assert got == 200
