"""Test connection: a step-by-step report, for the API and ``bollard test`` (DESIGN §8).

``POST /api/integrations/{slug}/test`` answers ``{ok, message, steps, durationMs}``; each
step is ``{name, ok, durationMs, message}``. REST integrations run the connector's
``test_connection(ctx)`` in the sandbox after checking the credentials and that every
allowed host resolves to an allowed address; SQL integrations connect and run
``SELECT 1``. Unsaved ``values`` may be tested before they are saved: they are laid over
the stored ones for that credential id and never written; when they change the target
(server, port, database, username, TLS, a URL/domain/host key), the stored secrets are
not laid under them: the test reports them missing until they are entered again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bollard.platform.errors import BollardError
from bollard.platform.packages import IntegrationVersion
from bollard.platform.redact import redact, secret_values

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime

DEFAULT_TEST_TIMEOUT_MS = 15_000


def _step(name: str, ok: bool, started: float, message: str) -> dict[str, Any]:
    return {
        "name": name,
        "ok": ok,
        "durationMs": round((time.perf_counter() - started) * 1000, 2),
        "message": message,
    }


async def _check_hosts(runtime: Runtime, version: IntegrationVersion) -> dict[str, Any]:
    """Every literal (non-wildcard) allowed host resolves to addresses the policy allows."""
    from bollard.platform.egress import EgressPolicy, parse_url
    from bollard.sandbox.errors import HttpRequestRefused

    started = time.perf_counter()
    hosts = version.manifest.allowed_hosts
    if not hosts:
        return _step("hosts", True, started, "allowedHosts is empty: the connector has no network access")
    policy = EgressPolicy(
        hosts, allow_private=runtime.settings.allow_private_egress, override=runtime.egress_override
    )
    checked = []
    for entry in hosts:
        if entry.startswith("*."):
            continue
        url = entry if "://" in entry else f"https://{entry}/"
        try:
            target = parse_url(url)
            policy.check_url(url)
            await policy.resolve(target)
        except (HttpRequestRefused, ValueError) as e:
            message = e.message if isinstance(e, HttpRequestRefused) else str(e)
            return _step("hosts", False, started, f"{entry}: {message}")
        checked.append(entry)
    return _step("hosts", True, started, f"allowed and resolving: {', '.join(checked) or '(wildcards only)'}")


async def run_connection_test(
    runtime: Runtime,
    version: IntegrationVersion,
    credential_id: str,
    unsaved: dict[str, str] | None = None,
    *,
    timeout_ms: int = DEFAULT_TEST_TIMEOUT_MS,
) -> dict[str, Any]:
    """Run the test of ``version`` with ``credential_id``'s values (``unsaved`` laid over
    them) and return the report; every failure is a step with ``ok: false``. Callers go
    through :meth:`ExecutionService.connection_test` (logged and rate-limited)."""
    from bollard.platform.credential_fields import required_keys

    t0 = time.perf_counter()
    service = runtime.execution
    slug = version.slug
    steps: list[dict[str, Any]] = []
    secrets: list[str] = []

    def report(ok: bool, message: str) -> dict[str, Any]:
        return redact(
            {
                "ok": ok,
                "message": message,
                "steps": steps,
                "durationMs": round((time.perf_counter() - t0) * 1000, 2),
            },
            secrets,
        )

    # 1. credentials present
    started = time.perf_counter()
    try:
        stored = await runtime.credentials.get(slug, credential_id) or {}
    except BollardError as e:  # e.g. credentials_unreadable after a key change
        steps.append(_step("credentials", False, started, e.message))
        return report(False, e.message)
    from bollard.platform.credential_fields import not_carried_message, secrets_not_carried

    changed, reenter = secrets_not_carried(stored, unsaved or {})
    if reenter:  # the stored secrets were entered for another target (issue 9, item 20)
        message = not_carried_message(changed, reenter)
        steps.append(_step("credentials", False, started, message))
        return report(False, message + ", then test again")
    values = {**stored, **(unsaved or {})}
    if version.manifest.auth_method == "oauth2" and not unsaved:
        try:
            values = await service.credential_values(version, credential_id)
        except BollardError as e:
            steps.append(_step("credentials", False, started, e.message))
            return report(False, e.message)
    secrets = secret_values(values)
    missing = [k for k in required_keys(version.manifest) if k not in values]
    if missing:
        message = f"missing credential values: {', '.join(missing)}"
        steps.append(_step("credentials", False, started, message))
        return report(False, message + "; enter them and test again")
    steps.append(
        _step("credentials", True, started, "all required values are set" if values else "none needed")
    )

    if version.manifest.type == "sql":
        sql_steps = await runtime.sql.test(version, values, timeout_ms=timeout_ms)
        steps.extend(sql_steps)
        failed = next((s for s in sql_steps if not s["ok"]), None)
        if failed is not None:
            return report(False, f"{failed['name']} failed: {failed['message']}")
        return report(True, "connected and ran SELECT 1")

    # 2. hosts allowed and resolving
    hosts = await _check_hosts(runtime, version)
    steps.append(hosts)
    if not hosts["ok"]:
        return report(False, hosts["message"])

    # 3. the connector's own test
    from bollard.sandbox.errors import ConnectorCompileError
    from bollard.sandbox.kinds import kind_for

    started = time.perf_counter()
    source = version.connector_source or ""
    filename = version.connector_file or "connector.py"
    try:
        has_test = kind_for(filename).check(source, filename).test_entrypoint is not None
    except ConnectorCompileError as e:
        steps.append(_step("connector", False, started, e.message))
        return report(False, e.message)
    if not has_test:
        name = "test_connection(ctx)" if filename == "connector.py" else "testConnection(ctx)"
        message = (
            f"this connector defines no {name}, so the connection cannot be tested; "
            "add one that makes a cheap authenticated request"
        )
        steps.append(_step("authenticate", False, started, message))
        return report(False, message)
    limits = service.limits.sandbox(version, None, timeout_ms)
    try:
        result = await service.connectors.run(
            version, "test_connection", "test_connection", {}, values, limits, credential_id=credential_id
        )
    except BollardError as e:
        name = "connect" if e.code in ("host_not_allowed", "network_error", "timeout") else "authenticate"
        steps.append(_step(name, False, started, e.message))
        return report(False, e.message)
    detail = result.value.get("message") if isinstance(result.value, dict) else None
    steps.append(_step("authenticate", True, started, str(detail or "test_connection(ctx) succeeded")))
    return report(True, str(detail or "connected"))
