"""The whole API answers what its OpenAPI document says (DESIGN §8): schemathesis
generates requests for every operation from ``/openapi.json`` and checks each response's
status code, content type and body schema against the document, and that none is a
server error. In-process (schemathesis's ASGI loader runs the app and its lifespan),
with an admin and an agent token, data that fits the document and data that does not
(negative mode), and a bounded number of examples per operation: ``make test`` runs
:data:`EXAMPLES_PER_OPERATION`, ``make fuzz`` many more (``BOLLARD_FUZZ_EXAMPLES``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.integrations import rest_manifest, write_integration

schemathesis = pytest.importorskip("schemathesis")

# per operation, role and generation mode; `make fuzz` sets BOLLARD_FUZZ_EXAMPLES (default 8)
EXAMPLES_PER_OPERATION = int(os.environ.get("BOLLARD_FUZZ_EXAMPLES", "8"))


def no_internal_error(ctx: object, response: object, case: object) -> None:
    """No ``500`` (the host's own failure) and nothing above 504. ``502``/``503``/``504``
    are the documented answers for an upstream that failed or a call that ran out of its
    time (DESIGN §8: a generated ``timeoutMs: 1`` times out, rightly);
    ``status_code_conformance`` checks that the route documents them."""
    from schemathesis.core.failures import ServerError

    status = response.status_code  # type: ignore[attr-defined]
    if status == 500 or status > 504:
        raise ServerError(operation=case.operation.label, status_code=status)  # type: ignore[attr-defined]


def conformance_checks() -> list:
    from schemathesis.specs.openapi.checks import (
        allow_header_conformance,
        content_type_conformance,
        ignored_auth,
        missing_required_header,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
        unsupported_method,
    )

    return [
        no_internal_error,
        allow_header_conformance,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
        negative_data_rejection,
        ignored_auth,
        missing_required_header,
        unsupported_method,
    ]


def auth_for(case: object, headers: dict[str, str]) -> dict[str, str]:
    """The token for ``case``, unless its headers are the negated part (a missing
    ``Authorization`` is then what it tests, and must answer 401, not be filled in)."""
    from schemathesis.core.parameters import ParameterLocation

    meta = getattr(case, "meta", None)
    component = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
    return {} if component is not None and component.mode.is_negative else headers


def make_token(settings_: object, role: str) -> str:
    from bollard.platform import tokens
    from bollard.platform.runtime import Runtime

    async def main() -> str:
        rt = Runtime(settings_)  # type: ignore[arg-type]
        await rt.start(watch=False)
        try:
            return await tokens.create_token(rt.db, role)  # type: ignore[arg-type]
        finally:
            await rt.stop()

    return asyncio.run(main())


@pytest.mark.parametrize("role", ["admin", "agent"])
def test_every_operation_conforms_to_the_openapi_document(tmp_path: Path, role: str) -> None:
    from schemathesis import GenerationMode
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
    headers = {"Authorization": f"Bearer {make_token(config, role)}"}
    app = create_app(config)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = conformance_checks()
    try:
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12
        for operation in operations:
            # Path parameters that name real things as well as random ones ("" keeps the random one).
            real = st.tuples(st.sampled_from(["echo", "broken", ""]), st.sampled_from(["echo", "cancel", ""]))

            cases = st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
            )

            @given(case=cases, real=real)
            @settings(
                max_examples=EXAMPLES_PER_OPERATION * 2,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: object, real: tuple[str, str]) -> None:
                params = getattr(case, "path_parameters", None) or {}
                for name, value in zip(("slug", "operation"), real, strict=True):
                    if name in params and value:
                        params[name] = value
                case.call_and_validate(headers=auth_for(case, headers), checks=checks)  # type: ignore[attr-defined]

            run()
    finally:
        asgi.shutdown_lifespans()
