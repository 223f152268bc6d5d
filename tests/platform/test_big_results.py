"""Attack test for big results (hardening issue item 3, DESIGN §4.6): decoding,
redacting and encoding a 5 MiB result of 1.7 M objects must not block the event loop.

The call runs on the app in this process; ``/healthz`` requests on the same app start
the moment the sandbox hands the result back (the pool's ``busy`` count drops to 0)
and must all complete before the big call does. An ordering, not a timing threshold.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from bollard.platform.redact import REDACTED, secret_values
from bollard.platform.result_json import redact_envelope
from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.integrations import rest_manifest, write_integration

SECRET = "big-result-secret-value"
BIG_CONNECTOR = """
def execute(ctx):
    return [{}] * 1700000
"""
HEALTHZ_CALLS = 5


async def test_healthz_answers_while_a_big_result_is_processed(
    integrations_dir: Path, data_dir: Path
) -> None:
    manifest = rest_manifest(authMethod="bearer_token", secretBindings=["accessToken"])
    manifest["operations"][0]["limits"] = {"maxResultBytes": 8 * 1024 * 1024, "memoryMb": 1024}
    manifest["operations"][0]["timeoutMs"] = 120_000
    write_integration(integrations_dir, "big", manifest=manifest, connector=BIG_CONNECTOR)
    settings = Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k", reload=False)
    async with app_client(settings) as (c, rt):
        r = await c.put("/api/integrations/big/credentials", json={"values": {"accessToken": SECRET}})
        assert r.status_code == 200
        order: list[str] = []

        async def big_call() -> httpx.Response:
            response = await c.post("/api/integrations/big/operations/echo", json={"params": {}}, timeout=300)
            order.append("big")
            return response

        def busy() -> int:
            return sum(group["busy"] for group in rt.pool.stats().values())

        call = asyncio.create_task(big_call())
        while busy() == 0:  # the worker runs the connector
            assert not call.done(), call.result().text[:500]
            await asyncio.sleep(0.005)
        while busy() > 0:  # the result arrives and is decoded
            await asyncio.sleep(0.005)
        # From here on the host redacts and encodes the result.
        for _ in range(HEALTHZ_CALLS):
            assert (await c.get("/healthz")).status_code == 200
        order.append("healthz")
        response = await call
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        assert body["count"] == 1_700_000 and body["data"][:2] == [{}, {}]
        assert order == ["healthz", "big"]


async def test_a_big_result_is_redacted_even_where_json_escapes_the_secret() -> None:
    secret = 'pa"ss\\word\nwith-escapes'
    body = {
        "success": True,
        "data": [{}] * 30_000 + [{"echo": f"<{secret}>", secret: 1}],
    }
    redacted, text = await redact_envelope(body, secret_values({"password": secret}))
    assert text is not None  # big: encoded off the loop
    assert json.loads(text) == redacted
    assert redacted["data"][-1] == {"echo": f"<{REDACTED}>", REDACTED: 1}
    assert json.dumps(secret)[1:-1] not in text and secret not in text


async def test_a_big_result_without_secrets_is_encoded_as_starlette_would() -> None:
    body = {"success": True, "data": [{"a": "é\u2028"}] * 30_000}
    redacted, text = await redact_envelope(body, secret_values({"apiKey": "not-in-there"}))
    assert redacted is body
    assert text == json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
