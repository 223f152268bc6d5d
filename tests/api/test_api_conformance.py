"""The whole API answers what its OpenAPI document says (DESIGN §8): schemathesis
generates requests for every operation from ``/openapi.json`` and checks each response's
status code, content type and body schema against the document, and that none is a
server error. In-process (schemathesis's ASGI loader runs the app and its lifespan),
with an admin token and a bounded number of examples per operation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.integrations import rest_manifest, write_integration

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES_PER_OPERATION = 8


def conformance_checks() -> list:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


def make_token(settings_: object) -> str:
    from bollard.platform import tokens
    from bollard.platform.runtime import Runtime

    async def main() -> str:
        rt = Runtime(settings_)  # type: ignore[arg-type]
        await rt.start(watch=False)
        try:
            return await tokens.create_token(rt.db, "admin")
        finally:
            await rt.stop()

    return asyncio.run(main())


def test_every_operation_conforms_to_the_openapi_document(tmp_path: Path) -> None:
    from schemathesis.python import asgi

    from bollard.platform.api.app import create_app
    from bollard.platform.settings import Settings

    integrations = tmp_path / "integrations"
    m = rest_manifest()
    m["operations"].append({"name": "cancel", "operationType": "write"})
    write_integration(integrations, "echo", manifest=m)
    write_integration(integrations, "broken", manifest="[1, 2")
    config = Settings(
        integrations_dir=integrations, data_dir=tmp_path / "data", secret_key="test-secret-key", reload=False
    )
    headers = {"Authorization": f"Bearer {make_token(config)}"}
    app = create_app(config)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = conformance_checks()
    try:
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:
            # Path parameters that name real things as well as random ones ("" keeps the random one).
            real = st.tuples(st.sampled_from(["echo", "broken", ""]), st.sampled_from(["echo", "cancel", ""]))

            @given(case=operation.as_strategy(), real=real)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: object, real: tuple[str, str]) -> None:
                params = getattr(case, "path_parameters", None) or {}
                for name, value in zip(("slug", "operation"), real, strict=True):
                    if name in params and value:
                        params[name] = value
                case.call_and_validate(headers=headers, checks=checks)  # type: ignore[attr-defined]

            run()
    finally:
        asgi.shutdown_lifespans()
