"""One call's execution-log record and its answer: the success envelope, the error
body, redaction of both (DESIGN §4.6, §8)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bollard.platform.invocation import Invocation, Outcome
from bollard.platform.redact import redact
from bollard.platform.result_json import redact_envelope

if TYPE_CHECKING:
    from bollard.platform.errors import BollardError
    from bollard.platform.execution_log import ExecutionLog
    from bollard.platform.packages import IntegrationVersion


class CallRecord:
    """The start of one call (wall clock and ``perf_counter``) and the records it ends with.

    ``version`` is set once resolved (``None`` in the record until then); ``secrets`` are
    the credential values to redact from what is logged and answered.
    """

    def __init__(self, execution_log: ExecutionLog, inv: Invocation) -> None:
        self.log = execution_log
        self.inv = inv
        self.started = datetime.now(UTC)
        self.t0 = time.perf_counter()
        self.version: IntegrationVersion | None = None
        self.secrets: list[str] = []

    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.perf_counter() - self.t0

    async def succeeded(self, body: dict[str, Any], params: dict[str, Any]) -> Outcome:
        """Stamp ``durationMs`` on the envelope, redact it, record ``succeeded``; 200."""
        inv, duration = self.inv, self.elapsed()
        body["durationMs"] = round(duration * 1000, 2)
        body, text = await redact_envelope(body, self.secrets)  # a big one off the loop (DESIGN §4.6)
        self.log.record(
            inv, self.version, self.started, duration, redact(params, self.secrets), "succeeded",
            mock=inv.use_mock, approval_id=inv.approval_id,
        )  # fmt: skip
        return Outcome(200, body, text=text)

    def held(self, params: dict[str, Any], pending: dict[str, Any]) -> Outcome:
        """Record ``pending_approval`` for a held write; 202 with ``pending`` (DESIGN §6)."""
        self.log.record(
            self.inv, self.version, self.started, self.elapsed(), params, "pending_approval",
            approval_id=pending["approvalId"],
        )  # fmt: skip
        return Outcome(202, pending)

    def record_failure(self, e: BollardError, message: str) -> None:
        """Record ``failed`` with ``e``'s code and ``message`` (already redacted)."""
        inv = self.inv
        params = redact(inv.params, self.secrets) if isinstance(inv.params, dict) else None
        self.log.record(
            inv, self.version, self.started, self.elapsed(), params, "failed", error_code=e.code,
            error_message=message, mock=inv.use_mock, approval_id=inv.approval_id,
        )  # fmt: skip

    def failed(self, e: BollardError) -> Outcome:
        """Record the failure; ``e.status`` with ``{"success": false, "error": {code, message,
        details?}}``, redacted, and ``e.headers`` (``Retry-After`` of a rate limit)."""
        message = redact(e.message, self.secrets)
        body: dict[str, Any] = {
            "success": False,
            "integration": self.inv.slug,
            "operation": self.inv.operation,
            "version": self.version.version if self.version else None,
            "error": {"code": e.code, "message": message},
            "durationMs": round(self.elapsed() * 1000, 2),
        }
        if e.details is not None:
            body["error"]["details"] = redact(e.details, self.secrets)
        self.record_failure(e, message)
        return Outcome(e.status, body, e.headers)
