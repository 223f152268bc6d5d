"""A connector run in the sandbox: the pool's worker for the version and credential, the
host's egress policy and budgets for its ``ctx.http``, ``ctx.files``, and its log lines
(DESIGN §4). REST calls run the ``execute`` entrypoint; Test connection runs
``test_connection``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bollard.platform import tracing
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.errors import ExecutionError
from bollard.platform.execution_log import add_connector_lines, current_caller
from bollard.platform.invocation import success_body
from bollard.platform.redact import escape_controls, redact_text, secret_values

if TYPE_CHECKING:
    from bollard.platform.egress import EgressPolicy
    from bollard.platform.egress.handler import HttpHandler
    from bollard.platform.files.handler import ExecutionFiles
    from bollard.platform.invocation import Call
    from bollard.platform.limits import LimitResolver
    from bollard.platform.manifest import Manifest
    from bollard.platform.packages import IntegrationVersion
    from bollard.platform.runtime import Runtime
    from bollard.sandbox.job import RunResult
    from bollard.sandbox.limits import Limits

connector_logger = logging.getLogger("bollard.connector")


def tale_variables(manifest: Manifest) -> dict[str, str]:
    """``connectionConfig``'s scalar values as text (``{"model": "gpt-image-1"}``): what
    Tale's ``ctx.secrets.get`` answers besides the secret bindings."""
    config = manifest.connection_config
    extra = (config.model_extra or {}) if config is not None else {}
    return {
        str(k): (("true" if v else "false") if type(v) is bool else str(v))
        for k, v in extra.items()
        if type(v) in (str, int, float, bool)
    }


def connector_log(slug: str, operation: str, lines: list[str], secrets: list[str]) -> None:
    """Write a connector's ``print``/``ctx.log`` lines to the server log, redacted and with
    control characters escaped (one line stays one line, DESIGN §4.6), and keep them so
    for the call's execution record."""
    kept = [escape_controls(redact_text(line[:2000], secrets)) for line in lines[:200]]
    for line in kept:
        connector_logger.info("%s.%s: %s", slug, operation, line)
    add_connector_lines(kept)


class ConnectorRunner:
    """Runs connectors in the sandbox pool for the execution service and Test connection.

    ``on_retry`` is called for each HTTP request a read retries (``/metrics``)."""

    def __init__(self, runtime: Runtime, limits: LimitResolver, on_retry: Callable[[], None]) -> None:
        self.runtime = runtime
        self.limits = limits
        self._on_retry = on_retry
        self._policies: dict[str, EgressPolicy] = {}

    def egress_policy(self, version: IntegrationVersion) -> EgressPolicy:
        """The egress policy of ``version``'s ``allowedHosts`` (cached per content hash)."""
        from bollard.platform.egress import EgressPolicy  # lazy: httpcore stays out of CLI start-up

        policy = self._policies.get(version.content_hash)
        if policy is None:
            policy = EgressPolicy(
                version.manifest.allowed_hosts,
                allow_private=self.runtime.settings.allow_private_egress,
                override=self.runtime.egress_override,
            )
            if len(self._policies) > 256:
                self._policies.clear()
            self._policies[version.content_hash] = policy
        return policy

    def http_handler(
        self, version: IntegrationVersion, limits: Limits, retries: int = 0, secrets: Sequence[str] = ()
    ) -> HttpHandler:
        """The callback the sandbox calls for each ``ctx.http`` request of one execution
        (``egress/handler.py``: the version's egress policy, the execution's budgets, and
        ``retries`` for reads)."""
        from bollard.platform.egress.handler import sandbox_http_handler  # lazy: httpcore

        return sandbox_http_handler(
            self.runtime.http_client,
            self.egress_policy(version),
            wall_time_ms=limits.wall_time_ms,
            max_response_bytes=limits.max_response_bytes,
            retries=retries,
            secrets=secrets,
            on_retry=self._on_retry,
            on_refusal=self.runtime.metrics.egress_refused,
        )

    def file_handler(
        self, version: IntegrationVersion, operation: str, credential_id: str, http_handler: HttpHandler
    ) -> ExecutionFiles | None:
        """``ctx.files`` for one execution (``files/handler.py``: the operator's caps, downloads
        through ``http_handler``), or ``None`` when the operator turned files off."""
        s = self.runtime.settings
        if not s.files_enabled:
            return None
        from bollard.platform.files.handler import ExecutionFiles
        from bollard.platform.files.store import FileOwner

        token_id, approval_id = current_caller()
        owner = FileOwner(version.slug, operation, credential_id, token_id, approval_id)
        return ExecutionFiles(
            self.runtime.files,
            owner,
            http_handler,
            max_file_bytes=s.max_file_bytes,
            max_total_bytes=s.max_files_bytes_per_execution,
            max_files=s.max_files_per_execution,
        )

    async def run(
        self,
        version: IntegrationVersion,
        entrypoint: str,
        operation: str,
        params: dict[str, Any],
        values: dict[str, str],
        limits: Limits,
        retries: int = 0,
        *,
        credential_id: str = DEFAULT_CREDENTIAL_ID,
    ) -> RunResult:
        """Run the connector's ``entrypoint`` once in the sandbox (``connector.py`` in the
        Python worker, Tale's ``connector.ts``/``.js`` in the Deno worker); return its ``RunResult``.

        Only the secrets the manifest declares in ``secretBindings`` reach the worker, a
        worker of this version and ``credential_id`` only (DESIGN §4.5).
        Sandbox failures become :class:`ExecutionError` with the sandbox's code.
        """
        from bollard.sandbox.errors import SandboxError  # lazy: the sandbox loads on first use
        from bollard.sandbox.job import Job

        source = version.connector_source
        if source is None:
            raise ExecutionError("integration_error", f"integration '{version.slug}' has no connector")
        declared = set(version.manifest.secret_bindings)
        secrets = {k: v for k, v in values.items() if k in declared}
        if version.connector_file != "connector.py":
            # Tale's secrets.get also answers connectionConfig's values (ai-image reads
            # its `model` that way); they are not secret, so only for Tale's connectors.
            secrets = {**tale_variables(version.manifest), **secrets}
        hidden = secret_values(values)
        http_handler = self.http_handler(version, limits, retries, hidden)
        try:
            with tracing.span("bollard.sandbox.run", {"bollard.entrypoint": entrypoint}):
                job = Job(
                    key=f"{version.slug}:{version.content_hash}",
                    tenant=credential_id,
                    source=source,
                    entrypoint=entrypoint,
                    operation=operation,
                    params=params,
                    secrets=secrets,
                    http_handler=http_handler,
                    limits=limits,
                    filename=version.connector_file or "connector.py",
                    file_handler=self.file_handler(version, operation, credential_id, http_handler),
                )
                result = await self.runtime.pool.run(job)
        except SandboxError as e:
            connector_log(version.slug, operation, e.logs, hidden)
            raise ExecutionError(e.code, e.message) from None
        connector_log(version.slug, operation, result.logs, hidden)
        return result

    async def execute(self, call: Call) -> dict[str, Any]:
        """Run a REST call's ``execute`` entrypoint; return the success envelope."""
        limits = self.limits.sandbox(call.version, call.op, call.timeout_ms)
        result = await self.run(
            call.version,
            "execute",
            call.op.name,
            call.params,
            call.values,
            limits,
            call.retries,
            credential_id=call.credential_id,
        )
        return success_body(call.version, call.op.name, result.value)
