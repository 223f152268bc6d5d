"""The execution service: the one path every caller uses to run an operation.

The HTTP API, the CLI, the agent tools, MCP and the web page all call
:meth:`ExecutionService.invoke`. It resolves the integration version and credential,
validates the parameters (jsonschema; each error names the parameter path), applies the
approval gate (DESIGN §6), then runs the operation — REST through the sandbox pool with
the host's egress policy, SQL through the SQL runner — and answers with the result
envelope of DESIGN §8. Every call is recorded in the execution log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jsonschema
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import BollardError, ExecutionError, SqlError
from bollard.platform.manifest import Operation, format_path
from bollard.platform.packages import IntegrationVersion
from bollard.platform.ratelimit import Limiter
from bollard.platform.redact import redact, redact_text, secret_values

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime


@dataclass
class Invocation:
    """One request to run an operation.

    ``caller`` says which front made it (``api``, ``cli``, ``mcp``, ``tools``, ``ui``,
    ``approval``); ``token_id``/``role`` who; ``timeout_ms`` lowers the wall time (up to
    the operator ceiling).
    """

    slug: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    credential_id: str = DEFAULT_CREDENTIAL_ID
    use_mock: bool = False
    timeout_ms: int | None = None
    caller: str = "api"
    token_id: str | None = None
    role: str | None = None
    approval_id: str | None = None
    retries: int = 0


@dataclass
class Outcome:
    """What the caller gets: an HTTP-like ``status`` (200, 202, 4xx/5xx) and the ``body``
    (the result envelope, or the pending approval for 202)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.status < 300


def success_body(version: IntegrationVersion, op_name: str, data: Any, **extra: Any) -> dict[str, Any]:
    """The success envelope of DESIGN §8 (``count`` when ``data`` is a list)."""
    body: dict[str, Any] = {
        "success": True,
        "integration": version.slug,
        "operation": op_name,
        "version": version.version,
        "data": data,
    }
    if isinstance(data, list):
        body["count"] = len(data)
    body.update(extra)
    return body


def apply_defaults(schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level ``default`` values of the parameters schema for omitted parameters."""
    out = dict(params)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in out and isinstance(prop, dict) and "default" in prop:
            out[name] = prop["default"]
    return out


_validators: dict[int, jsonschema.protocols.Validator] = {}


def validate_params(op: Operation, params: Any) -> dict[str, Any]:
    """Check ``params`` against the operation's JSON Schema and fill defaults.

    Unknown top-level parameters are refused (an agent's misspelt parameter must not be
    ignored silently). Raises :class:`ExecutionError` ``invalid_params`` whose message
    lists every problem as ``params.<path>: <reason>``.
    """
    if not isinstance(params, dict):
        raise ExecutionError("invalid_params", "params must be a JSON object")
    schema = op.params_schema
    known = set((schema.get("properties") or {}).keys())
    problems: list[dict[str, str]] = []
    if schema.get("additionalProperties", None) is None:
        for name in params:
            if name not in known:
                hint = (
                    f"; known parameters: {', '.join(sorted(known))}"
                    if known
                    else "; this operation takes none"
                )
                problems.append({"path": f"params.{name}", "message": f"unknown parameter{hint}"})
    key = id(schema)
    validator = _validators.get(key)
    if validator is None or getattr(validator, "schema", None) is not schema:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        if len(_validators) > 4096:  # schemas of replaced versions; rebuilt on demand
            _validators.clear()
        _validators[key] = validator
    for err in sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path))):
        path = format_path(["params", *err.absolute_path])
        message = err.message
        if err.validator == "required":
            missing = message.split("'")[1] if "'" in message else message
            path = f"params.{missing}"
            message = "is required"
        problems.append({"path": path, "message": message[:300]})
    if problems:
        text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise ExecutionError("invalid_params", text, details=problems)
    return apply_defaults(schema, params)


class ExecutionService:
    """Runs operations for every front (DESIGN §1: one execution service)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._policies: dict[str, Any] = {}
        self._limits: dict[tuple[str, str | None, int | None], Any] = {}
        self.limiter = Limiter()
        self.retry_count = 0  # retries made, for /metrics and tests

    # --- resolution -------------------------------------------------------------

    def resolve(self, slug: str, operation: str) -> tuple[IntegrationVersion, Operation]:
        """The serving version and the operation; raises ``unknown_*``/``integration_error``."""
        entry = self.runtime.registry.get(slug)
        if entry is None:
            raise ExecutionError("unknown_integration", f"no integration '{slug[:80]}' is installed")
        if entry.version is None:
            raise ExecutionError(
                "integration_error", f"integration '{slug}' failed to load: {entry.status_error}"
            )
        op = entry.version.manifest.operation(operation)
        if op is None:
            names = ", ".join(o.name for o in entry.version.manifest.all_operations)
            raise ExecutionError(
                "unknown_operation",
                f"integration '{slug}' has no operation '{operation[:80]}'; it has: {names}",
            )
        return entry.version, op

    async def credential_values(self, version: IntegrationVersion, credential_id: str) -> dict[str, str]:
        """The stored values of ``credential_id`` (empty for ``authMethod: none``).

        Raises ``unknown_credential`` for a named id that has nothing stored and
        ``needs_credentials`` when required keys are missing.
        """
        from bollard.platform.runtime import required_credential_keys

        check_credential_id(credential_id)
        values = await self.runtime.credentials.get(version.slug, credential_id)
        if values is None and credential_id != DEFAULT_CREDENTIAL_ID:
            raise ExecutionError(
                "unknown_credential",
                f"integration '{version.slug}' has no credential '{credential_id}'; "
                "set it with PUT /api/integrations/{slug}/credentials/{credentialId}",
            )
        values = values or {}
        if version.manifest.auth_method == "oauth2":
            values = await self.runtime.oauth2.fresh_values(version, credential_id, values)
        entry = self.runtime.registry.get(version.slug)
        required = required_credential_keys(entry) if entry is not None else ()
        missing = [k for k in required if k not in values]
        if missing:
            raise ExecutionError(
                "needs_credentials",
                f"integration '{version.slug}' needs credential values for: {', '.join(missing)} "
                f"(credential '{credential_id}'); set them in the settings page or with "
                "PUT /api/integrations/{slug}/credentials",
                details={"missing": missing},
            )
        return values

    # --- the entry point --------------------------------------------------------

    async def invoke(self, inv: Invocation) -> Outcome:
        """Validate, gate and run one invocation; never raises for call errors.

        Returns 200 with the result envelope, 202 with a pending approval, or the
        error's status with ``{"success": false, "error": {code, message}}``.
        """
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        version: IntegrationVersion | None = None
        secrets: list[str] = []
        try:
            version, op = self.resolve(inv.slug, inv.operation)
            params = validate_params(op, inv.params)
            if not 0 <= inv.retries <= MAX_RETRIES:
                raise ExecutionError("invalid_request", f"retries must be between 0 and {MAX_RETRIES}")
            if inv.retries and (op.operation_type != "read" or op.needs_approval):
                raise ExecutionError(  # a retried write could run twice (DESIGN §6)
                    "invalid_request",
                    f"retries: '{op.name}' is a write or needs approval; retries apply to reads only",
                )
            if inv.use_mock:
                return self._finish(inv, version, started, t0, self._mock(version, op), params, secrets)
            if op.needs_approval and inv.caller != "approval":
                approvals = self.runtime.approvals
                pending = await approvals.request(self, inv, version, op, params)
                self.runtime.execution_log.record(
                    inv,
                    version,
                    started,
                    time.perf_counter() - t0,
                    params,
                    "pending_approval",
                    approval_id=pending["id"],
                )
                return Outcome(202, pending)
            values = await self.credential_values(version, inv.credential_id)
            secrets = secret_values(values)
            if inv.caller == "approval":
                body = await self.run(
                    version, op, params, values, credential_id=inv.credential_id, timeout_ms=inv.timeout_ms
                )
            else:
                body = await self._run_limited(version, op, params, values, inv, inv.retries)
            return self._finish(inv, version, started, t0, body, params, secrets)
        except BollardError as e:
            return self._fail(inv, version, started, t0, e, secrets)
        except Exception as e:  # a bug must not take the caller down or leak internals
            logging.getLogger("bollard.execution").exception(
                "unexpected error in %s.%s", inv.slug, inv.operation
            )
            err = ExecutionError("internal_error", f"internal error ({type(e).__name__}); see the server log")
            return self._fail(inv, version, started, t0, err, secrets)

    def _finish(
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
        body = redact(body, secrets)
        body["durationMs"] = round(duration * 1000, 2)
        self.runtime.execution_log.record(
            inv,
            version,
            started,
            duration,
            redact(params, secrets),
            "succeeded",
            mock=inv.use_mock,
            approval_id=inv.approval_id,
        )
        return Outcome(200, body)

    def _fail(
        self,
        inv: Invocation,
        version: IntegrationVersion | None,
        started: datetime,
        t0: float,
        e: BollardError,
        secrets: list[str],
    ) -> Outcome:
        duration = time.perf_counter() - t0
        message = redact(e.message, secrets)
        body: dict[str, Any] = {
            "success": False,
            "integration": inv.slug,
            "operation": inv.operation,
            "version": version.version if version else None,
            "error": {"code": e.code, "message": message},
            "durationMs": round(duration * 1000, 2),
        }
        if e.details is not None:
            body["error"]["details"] = redact(e.details, secrets)
        self.runtime.execution_log.record(
            inv,
            version,
            started,
            duration,
            redact(inv.params, secrets) if isinstance(inv.params, dict) else None,
            "failed",
            error_code=e.code,
            error_message=message,
            mock=inv.use_mock,
            approval_id=inv.approval_id,
        )
        return Outcome(e.status, body, e.headers)

    async def _run_limited(
        self,
        version: IntegrationVersion,
        op: Operation,
        params: dict[str, Any],
        values: dict[str, str],
        inv: Invocation,
        retries: int,
    ) -> dict[str, Any]:
        """Apply the rate limits and the concurrency cap, then run (429 when over)."""
        m = version.manifest
        integration_limit = m.connection_config.rate_limit if m.connection_config else None
        for key, limit in ((version.slug, integration_limit), (f"{version.slug}/{op.name}", op.rate_limit)):
            wait = self.limiter.check_rate(key, limit)
            if wait:
                raise ExecutionError(
                    "rate_limited",
                    f"rate limit of {'operation ' + op.name if '/' in key else 'integration ' + version.slug} "
                    f"reached ({limit.requests if limit else 0} per {limit.per_seconds if limit else 0:g} s); "
                    f"retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
        cap_key = f"{version.slug}/{op.name}"
        if not self.limiter.acquire(cap_key, op.max_concurrency):
            raise ExecutionError(
                "too_many_concurrent",
                f"operation '{op.name}' already runs {op.max_concurrency} time(s) at once (maxConcurrency); "
                "retry shortly",
                headers={"Retry-After": "1"},
            )
        try:
            return await self.run(
                version,
                op,
                params,
                values,
                credential_id=inv.credential_id,
                timeout_ms=inv.timeout_ms,
                retries=retries,
            )
        finally:
            self.limiter.release(cap_key, op.max_concurrency)

    def _mock(self, version: IntegrationVersion, op: Operation) -> dict[str, Any]:
        if not op.has_mock:
            raise ExecutionError(
                "no_mock",
                f"operation '{op.name}' has no mock result; add a \"mock\" example to it in config.json "
                "or call without useMock",
            )
        return success_body(version, op.name, op.mock, mock=True)

    # --- running ----------------------------------------------------------------

    async def run(
        self,
        version: IntegrationVersion,
        op: Operation,
        params: dict[str, Any],
        values: dict[str, str],
        *,
        credential_id: str = DEFAULT_CREDENTIAL_ID,
        timeout_ms: int | None = None,
        retries: int = 0,
    ) -> dict[str, Any]:
        """Run an already validated and approved operation; return the success envelope.

        ``retries`` (read operations only) retries failed HTTP requests (network errors,
        429, 5xx) or SQL connection failures with exponential backoff and jitter.
        Raises :class:`ExecutionError` with the failure's code.
        """
        if version.manifest.type == "sql":
            return await self._run_sql(version, op, params, values, credential_id, timeout_ms, retries)
        return await self._run_rest(version, op, params, values, timeout_ms, retries=retries)

    def limits_for(self, version: IntegrationVersion, op: Operation | None, timeout_ms: int | None) -> Any:
        """Sandbox limits: defaults ← ``connectionConfig.timeout`` ← operation overrides ←
        the caller's ``timeoutMs`` (only lowers), capped by the operator ceilings.

        Cached per (version, operation, timeoutMs): the inputs are immutable.
        """
        key = (version.content_hash, op.name if op is not None else None, timeout_ms)
        cached = self._limits.get(key)
        if cached is None:
            cached = self._resolve_limits(version, op, timeout_ms)
            if len(self._limits) > 4096:
                self._limits.clear()
            self._limits[key] = cached
        return cached

    def _resolve_limits(
        self, version: IntegrationVersion, op: Operation | None, timeout_ms: int | None
    ) -> Any:
        from bollard.sandbox.limits import DEFAULT_LIMITS, MIB, Limits, resolve_limits

        s = self.runtime.settings
        ceiling = Limits(
            wall_time_ms=s.max_wall_time_ms,
            cpu_time_ms=s.max_cpu_time_ms,
            memory_bytes=s.max_memory_mb * MIB,
            max_http_requests=s.max_http_requests,
            max_response_bytes=s.max_response_bytes,
            max_result_bytes=s.max_result_bytes,
        )
        override: dict[str, Any] = {}
        cc = version.manifest.connection_config
        if cc is not None and cc.timeout:
            override["timeoutMs"] = cc.timeout
        if op is not None:
            if op.limits is not None:
                override.update(op.limits.model_dump(by_alias=True, exclude_none=True))
            if op.timeout_ms:
                override["timeoutMs"] = op.timeout_ms
        if timeout_ms is not None:
            if type(timeout_ms) is not int or timeout_ms <= 0:
                raise ExecutionError("invalid_request", "timeoutMs must be a positive integer (milliseconds)")
            override["timeoutMs"] = min(timeout_ms, override.get("timeoutMs", DEFAULT_LIMITS.wall_time_ms))
        return resolve_limits(DEFAULT_LIMITS, override, ceiling)

    def egress_policy(self, version: IntegrationVersion) -> Any:
        from bollard.platform.egress import EgressPolicy

        policy = self._policies.get(version.content_hash)
        if policy is None:
            policy = EgressPolicy(
                version.manifest.allowed_hosts, allow_private=self.runtime.settings.allow_private_egress
            )
            if len(self._policies) > 256:
                self._policies.clear()
            self._policies[version.content_hash] = policy
        return policy

    def http_handler(
        self, version: IntegrationVersion, limits: Any, retries: int = 0
    ) -> Callable[[Any], Awaitable[Any]]:
        """The callback the sandbox calls for each ``ctx.http`` request (DESIGN §4.3).

        With ``retries`` > 0 a request failing with a network error or answered 429 or
        5xx is sent again after ``backoff(attempt)`` (or ``Retry-After``), within the
        execution's wall time.
        """
        from bollard.platform import egress
        from bollard.sandbox.protocol import HttpRequestRefused

        client = self.runtime.http_client
        policy = self.egress_policy(version)
        deadline = time.monotonic() + limits.wall_time_ms / 1000

        async def handler(request: Any) -> Any:
            attempt = 0
            while True:
                remaining = max(0.05, deadline - time.monotonic())
                try:
                    response = await egress.send(
                        client,
                        policy,
                        request,
                        max_response_bytes=limits.max_response_bytes,
                        timeout_s=remaining,
                    )
                except HttpRequestRefused as e:
                    if attempt >= retries or e.code not in ("network_error", "timeout"):
                        raise
                    wait = backoff(attempt)
                else:
                    if attempt >= retries or not (response.status == 429 or response.status >= 500):
                        return response
                    wait = retry_after(response.headers.get("retry-after")) or backoff(attempt)
                if time.monotonic() + wait >= deadline:
                    raise HttpRequestRefused("timeout", "no time left to retry the request")
                attempt += 1
                self.retry_count += 1
                await asyncio.sleep(wait)

        return handler

    async def run_connector(
        self,
        version: IntegrationVersion,
        entrypoint: str,
        operation: str,
        params: dict[str, Any],
        values: dict[str, str],
        limits: Any,
        retries: int = 0,
    ) -> Any:
        """Run ``connector.py``'s ``entrypoint`` once in the sandbox; return its ``RunResult``.

        Only the secrets the manifest declares in ``secretBindings`` reach the worker.
        Sandbox failures become :class:`ExecutionError` with the sandbox's code.
        """
        from bollard.sandbox.errors import SandboxError

        source = version.connector_source
        if source is None:
            raise ExecutionError("integration_error", f"integration '{version.slug}' has no connector.py")
        declared = set(version.manifest.secret_bindings)
        secrets = {k: v for k, v in values.items() if k in declared}
        hidden = secret_values(values)
        try:
            result = await self.runtime.pool.run(
                key=f"{version.slug}:{version.content_hash}",
                source=source,
                entrypoint=entrypoint,
                operation=operation,
                params=params,
                secrets=secrets,
                http_handler=self.http_handler(version, limits, retries),
                limits=limits,
            )
        except SandboxError as e:
            connector_log(version.slug, operation, e.logs, hidden)
            raise ExecutionError(e.code, e.message) from None
        connector_log(version.slug, operation, result.logs, hidden)
        return result

    async def _run_rest(
        self,
        version: IntegrationVersion,
        op: Operation,
        params: dict[str, Any],
        values: dict[str, str],
        timeout_ms: int | None,
        *,
        retries: int = 0,
    ) -> dict[str, Any]:
        limits = self.limits_for(version, op, timeout_ms)
        result = await self.run_connector(version, "execute", op.name, params, values, limits, retries)
        return success_body(version, op.name, result.value)

    async def _run_sql(
        self,
        version: IntegrationVersion,
        op: Operation,
        params: dict[str, Any],
        values: dict[str, str],
        credential_id: str,
        timeout_ms: int | None,
        retries: int = 0,
    ) -> dict[str, Any]:

        sql = self.runtime.sql
        assert op.query is not None
        attempt = 0
        while True:
            try:
                res = await sql.run(
                    version, op, params, values, credential_id=credential_id, timeout_ms=timeout_ms
                )
                break
            except SqlError as e:
                if attempt >= retries or e.code != "connection_failed":
                    raise
            attempt += 1
            self.retry_count += 1
            await asyncio.sleep(backoff(attempt - 1))
        body = success_body(version, op.name, res.rows, truncated=res.truncated)
        if res.rows_affected is not None:
            body["rowsAffected"] = res.rows_affected
        return body


MAX_RETRIES = 5
connector_logger = logging.getLogger("bollard.connector")


def connector_log(slug: str, operation: str, lines: list[str], secrets: list[str]) -> None:
    """Write a connector's ``print``/``ctx.log`` lines to the server log, redacted."""
    for line in lines[:200]:
        connector_logger.info("%s.%s: %s", slug, operation, redact_text(line[:2000], secrets))


def backoff(attempt: int, base_s: float = 0.1, cap_s: float = 5.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)] s."""
    return random.uniform(0, min(cap_s, base_s * (2**attempt))) + 0.01


def retry_after(value: str | None, cap_s: float = 10.0) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form, RFC 9110 §10.2.3), capped."""
    if value is None:
        return None
    try:
        return min(cap_s, max(0.0, float(value.strip())))
    except ValueError:
        return None
