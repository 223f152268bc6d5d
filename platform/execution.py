"""The execution service: the one path every caller uses to run an operation.

The HTTP API, the CLI, the agent tools, MCP and the web page call
:meth:`ExecutionService.invoke`; the approvals service calls
:meth:`ExecutionService.run_approved` once a person approved; Test connection is
:meth:`ExecutionService.test_connection`. In order (DESIGN §1): resolve the serving
version and the operation → validate the parameters (``params.py``) → the approval gate
(DESIGN §6) → credential values → rate limits and the concurrency cap → run (REST through
the sandbox pool with the host's egress policy, SQL through the SQL runner; limits from
``limits.py``, retries from ``retry.py``) → redaction → the result envelope of DESIGN §8.
Every call is recorded in the execution log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bollard.platform import tracing
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import BollardError, ExecutionError, SqlError
from bollard.platform.execution_log import add_connector_lines, capture_connector_lines, current_caller
from bollard.platform.invocation import Call, Invocation, Outcome, success_body
from bollard.platform.limits import LimitResolver
from bollard.platform.manifest import Manifest, Operation
from bollard.platform.packages import IntegrationVersion
from bollard.platform.params import validate_params
from bollard.platform.pg_ratelimit import make_limiter
from bollard.platform.redact import escape_controls, redact, redact_text, secret_values
from bollard.platform.result_json import redact_envelope
from bollard.platform.retry import MAX_RETRIES, backoff, with_retries

if TYPE_CHECKING:
    from bollard.platform.egress import EgressPolicy
    from bollard.platform.egress.handler import HttpHandler
    from bollard.platform.files.handler import ExecutionFiles
    from bollard.platform.runtime import Runtime
    from bollard.sandbox.limits import Limits
    from bollard.sandbox.pool import RunResult

log = logging.getLogger("bollard.execution")
connector_logger = logging.getLogger("bollard.connector")

TEST_CONNECTION = "testConnection"  # the operation name Test connection is logged under


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


class ExecutionService:
    """Runs operations for every front (DESIGN §1: one execution service)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.limits = LimitResolver(runtime.settings)
        self._policies: dict[str, EgressPolicy] = {}
        # shared across replicas on PostgreSQL, in process on SQLite (DESIGN §12)
        self.limiter = make_limiter(runtime.db)
        self.retry_count = 0  # retries made, for /metrics and tests

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
        started, t0 = datetime.now(UTC), time.perf_counter()
        version: IntegrationVersion | None = None
        try:
            with tracing.span("bollard.connection_test", tracing.call_attributes(inv)) as span:
                check_credential_id(credential_id)
                version = self.runtime.registry.require_version(slug)
                await self._check_rate(version, None)
                report = await run_connection_test(self.runtime, version, credential_id, unsaved)
                span.set_attribute("bollard.outcome", "succeeded" if report["ok"] else "failed")
        except BollardError as e:
            self._record_failure(inv, version, started, t0, e, e.message, [])
            raise
        duration = time.perf_counter() - t0
        if report["ok"]:
            self.runtime.execution_log.record(inv, version, started, duration, {}, "succeeded")
        else:
            self.runtime.execution_log.record(
                inv, version, started, duration, {}, "failed",
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
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        capture_connector_lines(inv.token_id, inv.approval_id)  # kept with this call's execution record
        version: IntegrationVersion | None = None
        secrets: list[str] = []
        try:
            version, op = self.resolve(inv.slug, inv.operation, pinned)
            resolved.append(op)
            s = self.runtime.settings
            params = validate_params(op, inv.params, max_depth=s.max_param_depth, max_bytes=s.max_param_bytes)
            retries = self._check_retries(op, inv.retries)
            if inv.use_mock:
                mock = self._mock(version, op)
                return await self._finish(inv, version, started, t0, mock, params, secrets)
            if op.needs_approval and not approved:
                with tracing.span("bollard.approval.request") as span:
                    pending = await self.runtime.approvals.request(self, inv, version, op, params)
                    span.set_attribute("bollard.approval_id", pending["approvalId"])
                self.runtime.execution_log.record(
                    inv, version, started, time.perf_counter() - t0, params, "pending_approval",
                    approval_id=pending["approvalId"],
                )  # fmt: skip
                return Outcome(202, pending)
            values = await self.credential_values(version, inv.credential_id)
            secrets = secret_values(values)
            call = Call(version, op, params, values, inv.credential_id, inv.timeout_ms, retries)
            body = await self.run(call) if approved else await self._run_limited(call)
            return await self._finish(inv, version, started, t0, body, params, secrets)
        except BollardError as e:
            return self._fail(inv, version, started, t0, e, secrets)
        except Exception as e:  # a bug must not take the caller down or leak internals
            log.exception(
                "unexpected error in %s.%s", escape_controls(inv.slug), escape_controls(inv.operation)
            )
            err = ExecutionError("internal_error", f"internal error ({type(e).__name__}); see the server log")
            return self._fail(inv, version, started, t0, err, secrets)

    @staticmethod
    def _check_retries(op: Operation, retries: Any) -> int:
        """``retries`` (0–5) apply to reads only: a write is never sent twice (DESIGN §8)."""
        if type(retries) is not int or not 0 <= retries <= MAX_RETRIES:
            raise ExecutionError(
                "invalid_request", f"retries must be an integer between 0 and {MAX_RETRIES}, got {retries!r}"
            )
        if retries and (op.operation_type != "read" or op.needs_approval):
            raise ExecutionError(
                "invalid_request",
                f"retries applies to read operations only; '{op.name}' is a write "
                "(a write is never sent twice): call it without retries",
            )
        return retries

    async def _finish(
        self,
        inv: Invocation,
        version: IntegrationVersion,
        started: datetime,
        t0: float,
        body: dict[str, Any],
        params: dict[str, Any],
        secrets: list[str],
    ) -> Outcome:
        duration = time.perf_counter() - t0
        body["durationMs"] = round(duration * 1000, 2)
        body, text = await redact_envelope(body, secrets)  # a big one off the loop (DESIGN §4.6)
        self.runtime.execution_log.record(
            inv, version, started, duration, redact(params, secrets), "succeeded", mock=inv.use_mock,
            approval_id=inv.approval_id,
        )  # fmt: skip
        return Outcome(200, body, text=text)

    def _record_failure(
        self,
        inv: Invocation,
        version: IntegrationVersion | None,
        started: datetime,
        t0: float,
        e: BollardError,
        message: str,
        secrets: list[str],
    ) -> None:
        params = redact(inv.params, secrets) if isinstance(inv.params, dict) else None
        self.runtime.execution_log.record(
            inv, version, started, time.perf_counter() - t0, params, "failed", error_code=e.code,
            error_message=message, mock=inv.use_mock, approval_id=inv.approval_id,
        )  # fmt: skip

    def _fail(
        self,
        inv: Invocation,
        version: IntegrationVersion | None,
        started: datetime,
        t0: float,
        e: BollardError,
        secrets: list[str],
    ) -> Outcome:
        message = redact(e.message, secrets)
        body: dict[str, Any] = {
            "success": False,
            "integration": inv.slug,
            "operation": inv.operation,
            "version": version.version if version else None,
            "error": {"code": e.code, "message": message},
            "durationMs": round((time.perf_counter() - t0) * 1000, 2),
        }
        if e.details is not None:
            body["error"]["details"] = redact(e.details, secrets)
        self._record_failure(inv, version, started, t0, e, message, secrets)
        return Outcome(e.status, body, e.headers)

    async def _check_rate(self, version: IntegrationVersion, op: Operation | None) -> None:
        """Raise ``rate_limited`` (429, ``Retry-After``) when the integration's or the
        operation's ``rateLimit`` is used up (DESIGN §2 extensions)."""
        m = version.manifest
        checks = [(version.slug, m.connection_config.rate_limit if m.connection_config else None)]
        if op is not None:
            checks.append((f"{version.slug}/{op.name}", op.rate_limit))
        for key, limit in checks:
            if limit is None:
                continue
            wait = await self.limiter.check_rate(key, limit)
            if wait:
                what = (
                    f"operation {op.name}" if op is not None and "/" in key else f"integration {version.slug}"
                )
                raise ExecutionError(
                    "rate_limited",
                    f"rate limit of {what} reached ({limit.requests} per {limit.per_seconds:g} s); "
                    f"retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )

    async def _run_limited(self, call: Call) -> dict[str, Any]:
        """Apply the rate limits and the concurrency cap, then run (429 when over)."""
        op = call.op
        await self._check_rate(call.version, op)
        if op.max_concurrency is None:
            return await self.run(call)
        lease = await self.limiter.acquire(f"{call.version.slug}/{op.name}", op.max_concurrency)
        if lease is None:
            raise ExecutionError(
                "too_many_concurrent",
                f"operation '{op.name}' already runs {op.max_concurrency} time(s) at once "
                "(maxConcurrency); retry shortly",
                headers={"Retry-After": "1"},
            )
        try:
            return await self.run(call)
        finally:
            await self.limiter.release(lease)

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
            return await self._run_sql(call)
        return await self._run_rest(call)

    def limits_for(self, version: IntegrationVersion, op: Operation | None, timeout_ms: int | None) -> Limits:
        """Sandbox limits of a call (``limits.py``: the one rule, cached)."""
        return self.limits.sandbox(version, op, timeout_ms)

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
            on_retry=self._count_retry,
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

    def _count_retry(self) -> None:
        self.retry_count += 1

    async def run_connector(
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

    async def _run_rest(self, call: Call) -> dict[str, Any]:
        limits = self.limits.sandbox(call.version, call.op, call.timeout_ms)
        result = await self.run_connector(
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

    async def _run_sql(self, call: Call) -> dict[str, Any]:
        sql = self.runtime.sql

        def should_retry(_: object, error: BaseException | None, attempt: int) -> float | None:
            connection_failed = isinstance(error, SqlError) and error.code == "connection_failed"
            return backoff(attempt) if connection_failed else None

        conf = call.version.manifest.sql_connection_config
        with tracing.span("bollard.sql.run", {"db.system.name": conf.engine if conf else "sql"}) as span:
            res = await with_retries(
                lambda: sql.run(call, self.limits.sql_security(call.version, call.timeout_ms)),
                retries=call.retries,
                should_retry=should_retry,
                on_retry=self._count_retry,
            )
            span.set_attribute("bollard.rows", len(res.rows) if isinstance(res.rows, list) else 0)
            span.set_attribute("bollard.truncated", bool(res.truncated))
        body = success_body(call.version, call.op.name, res.rows, truncated=res.truncated)
        if res.truncated:
            reason = res.truncated_reason or "rows"
            self.runtime.metrics.sql_truncations.labels(call.version.slug, reason).inc()
        if res.truncated_reason is not None:
            body["truncatedReason"] = res.truncated_reason
        if res.rows_affected is not None:
            body["rowsAffected"] = res.rows_affected
        return body


def connector_log(slug: str, operation: str, lines: list[str], secrets: list[str]) -> None:
    """Write a connector's ``print``/``ctx.log`` lines to the server log, redacted and with
    control characters escaped (one line stays one line, DESIGN §4.6), and keep them so
    for the call's execution record."""
    kept = [escape_controls(redact_text(line[:2000], secrets)) for line in lines[:200]]
    for line in kept:
        connector_logger.info("%s.%s: %s", slug, operation, line)
    add_connector_lines(kept)
