"""The execution service's facade: resolve the operation, validate, hold a write for
approval, credential values, then dispatch to the REST or SQL runner (the package
docstring gives the whole path)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bollard.platform import tracing
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import BollardError, ExecutionError
from bollard.platform.execution.connector import ConnectorRunner
from bollard.platform.execution.record import CallRecord
from bollard.platform.execution.sql import run_sql
from bollard.platform.execution.throttle import check_rate, check_retries, run_limited
from bollard.platform.execution_log import capture_connector_lines
from bollard.platform.invocation import Call, Invocation, Outcome, success_body
from bollard.platform.limits import LimitResolver
from bollard.platform.manifest import Operation
from bollard.platform.packages import IntegrationVersion
from bollard.platform.params import validate_params
from bollard.platform.pg_ratelimit import make_limiter
from bollard.platform.redact import escape_controls, secret_values

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime

log = logging.getLogger("bollard.execution")

TEST_CONNECTION = "testConnection"  # the operation name Test connection is logged under


class ExecutionService:
    """Runs operations for every front (DESIGN §1: one execution service).

    ``limits`` resolves sandbox and SQL limits, ``limiter`` keeps rate limits and
    concurrency leases, ``connectors`` runs connectors in the sandbox, ``retry_count``
    counts the retries made (``/metrics``, tests)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.limits = LimitResolver(runtime.settings)
        # shared across replicas on PostgreSQL, in process on SQLite (DESIGN §12)
        self.limiter = make_limiter(runtime.db)
        self.retry_count = 0  # retries made, for /metrics and tests
        self.connectors = ConnectorRunner(runtime, self.limits, on_retry=self._count_retry)

    def _count_retry(self) -> None:
        self.retry_count += 1

    # --- resolution -------------------------------------------------------------

    def resolve(
        self, slug: str, operation: str, pinned: IntegrationVersion | None = None
    ) -> tuple[IntegrationVersion, Operation]:
        """The serving version (or ``pinned``) and the operation; raises
        ``unknown_integration``, ``integration_error`` or ``unknown_operation`` (naming the
        operations it has)."""
        version = pinned if pinned is not None else self.runtime.registry.require_version(slug)
        op = version.manifest.operation(operation)
        if op is None:
            names = ", ".join(o.name for o in version.manifest.all_operations)
            raise ExecutionError(
                "unknown_operation",
                f"integration '{slug}' has no operation '{operation[:80]}'; it has: {names}",
            )
        return version, op

    async def credential_values(self, version: IntegrationVersion, credential_id: str) -> dict[str, str]:
        """The stored values of ``credential_id`` (empty for ``authMethod: none``).

        Raises ``invalid_params`` for a malformed id, ``unknown_credential`` for a named
        id that has nothing stored, ``needs_credentials`` when required keys are missing
        and ``credentials_unreadable`` when the stored values cannot be decrypted.
        """
        from bollard.platform.credential_fields import required_keys

        check_credential_id(credential_id)
        slug = version.slug
        values = await self.runtime.credentials.get(slug, credential_id)
        if values is None and credential_id != DEFAULT_CREDENTIAL_ID:
            raise ExecutionError(
                "unknown_credential",
                f"integration '{slug}' has no credential '{credential_id}'; "
                f"set it with PUT /api/integrations/{slug}/credentials/{credential_id}",
            )
        values = values or {}
        if version.manifest.auth_method == "oauth2":
            values = await self.runtime.oauth2.fresh_values(version, credential_id, values)
        missing = [k for k in required_keys(version.manifest) if k not in values]
        if missing:
            path = "" if credential_id == DEFAULT_CREDENTIAL_ID else f"/{credential_id}"
            raise ExecutionError(
                "needs_credentials",
                f"integration '{slug}' needs credential values for: {', '.join(missing)} "
                f"(credential '{credential_id}'); set them with "
                f"PUT /api/integrations/{slug}/credentials{path}",
                details={"missing": missing},
            )
        return values

    # --- the entry points -------------------------------------------------------

    async def invoke(self, inv: Invocation) -> Outcome:
        """Validate, gate and run one invocation; never raises for call errors.

        Returns 200 with the result envelope, 202 with a pending approval, or the
        error's status with ``{"success": false, "error": {code, message}}``.
        """
        with tracing.span("bollard.invoke", tracing.call_attributes(inv)) as span:
            outcome = await self._execute(inv, approved=False)
            tracing.end_call(span, outcome.status, outcome.body)
        return outcome

    async def run_approved(self, inv: Invocation, version: IntegrationVersion | None = None) -> Outcome:
        """Run an invocation a person approved (the approvals service calls this once,
        after claiming the approval; DESIGN §6). Skips the approval gate and the rate
        limits (the request passed them when it was made); logged like any call.
        ``version``: the version the approval was checked against, which is what runs
        (never the registry's version of a moment later)."""
        with tracing.span("bollard.run_approved", tracing.call_attributes(inv)) as span:
            outcome = await self._execute(inv, approved=True, pinned=version)
            tracing.end_call(span, outcome.status, outcome.body)
        return outcome

    async def connection_test(
        self,
        slug: str,
        credential_id: str = DEFAULT_CREDENTIAL_ID,
        unsaved: dict[str, str] | None = None,
        *,
        caller: str = "api",
        token_id: str | None = None,
        role: str | None = None,
    ) -> dict[str, Any]:
        """Test connection (DESIGN §8): ``{ok, message, steps, durationMs}``.

        Rate-limited by the integration's ``connectionConfig.rateLimit`` and recorded in
        the execution log under the operation ``testConnection`` like any call. Raises
        ``unknown_integration``/``integration_error``, ``invalid_params`` (credential id)
        or ``rate_limited``; a failing test is a report with ``ok: false``.
        """
        from bollard.platform.connection_test import run_connection_test

        inv = Invocation(
            slug, TEST_CONNECTION, {}, credential_id, caller=caller, token_id=token_id, role=role
        )
        rec = CallRecord(self.runtime.execution_log, inv)
        try:
            with tracing.span("bollard.connection_test", tracing.call_attributes(inv)) as span:
                check_credential_id(credential_id)
                rec.version = version = self.runtime.registry.require_version(slug)
                await check_rate(self.limiter, version, None)
                report = await run_connection_test(self.runtime, version, credential_id, unsaved)
                span.set_attribute("bollard.outcome", "succeeded" if report["ok"] else "failed")
        except BollardError as e:
            rec.record_failure(e, e.message)
            raise
        duration = rec.elapsed()
        if report["ok"]:
            rec.log.record(inv, version, rec.started, duration, {}, "succeeded")
        else:
            rec.log.record(
                inv, version, rec.started, duration, {}, "failed",
                error_code="connection_failed", error_message=str(report["message"]),
            )  # fmt: skip
        return report

    async def _execute(
        self, inv: Invocation, *, approved: bool, pinned: IntegrationVersion | None = None
    ) -> Outcome:
        """Run the call; a write's execution record is committed before the answer goes
        out (DESIGN §12: a SIGKILL loses no write's record; reads are written behind, in
        batches of at most ``execution_log.BATCH_INTERVAL_S``)."""
        resolved: list[Operation] = []
        outcome = await self._execute_call(inv, approved=approved, pinned=pinned, resolved=resolved)
        if approved or any(op.operation_type != "read" or op.needs_approval for op in resolved):
            await self.runtime.execution_log.commit()
        return outcome

    async def _execute_call(
        self,
        inv: Invocation,
        *,
        approved: bool,
        pinned: IntegrationVersion | None,
        resolved: list[Operation],
    ) -> Outcome:
        rec = CallRecord(self.runtime.execution_log, inv)
        capture_connector_lines(inv.token_id, inv.approval_id)  # kept with this call's execution record
        try:
            version, op = self.resolve(inv.slug, inv.operation, pinned)
            rec.version = version
            resolved.append(op)
            s = self.runtime.settings
            params = validate_params(op, inv.params, max_depth=s.max_param_depth, max_bytes=s.max_param_bytes)
            retries = check_retries(op, inv.retries)
            if inv.use_mock:
                return await rec.succeeded(self._mock(version, op), params)
            if op.needs_approval and not approved:
                with tracing.span("bollard.approval.request") as span:
                    pending = await self.runtime.approvals.request(self, inv, version, op, params)
                    span.set_attribute("bollard.approval_id", pending["approvalId"])
                return rec.held(params, pending)
            values = await self.credential_values(version, inv.credential_id)
            rec.secrets = secret_values(values)
            call = Call(version, op, params, values, inv.credential_id, inv.timeout_ms, retries)
            body = await self.run(call) if approved else await run_limited(self.limiter, call, self.run)
            return await rec.succeeded(body, params)
        except BollardError as e:
            return rec.failed(e)
        except Exception as e:  # a bug must not take the caller down or leak internals
            log.exception(
                "unexpected error in %s.%s", escape_controls(inv.slug), escape_controls(inv.operation)
            )
            err = ExecutionError("internal_error", f"internal error ({type(e).__name__}); see the server log")
            return rec.failed(err)

    def _mock(self, version: IntegrationVersion, op: Operation) -> dict[str, Any]:
        if not op.has_mock:
            raise ExecutionError(
                "no_mock",
                f"operation '{op.name}' has no mock result; add a \"mock\" example to it in config.json "
                "or call without useMock",
            )
        return success_body(version, op.name, op.mock, mock=True)

    # --- running ----------------------------------------------------------------

    async def run(self, call: Call) -> dict[str, Any]:
        """Run an already validated and approved call; return the success envelope.

        ``call.retries`` (reads only) retries failed HTTP requests (network errors, 429,
        5xx) or SQL connection failures with backoff (``retry.py``). Raises
        :class:`ExecutionError` (or :class:`SqlError`) with the failure's code.
        """
        if call.version.manifest.type == "sql":
            return await run_sql(self.runtime, self.limits, call, self._count_retry)
        return await self.connectors.execute(call)
