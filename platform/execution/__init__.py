"""The execution service: the one path every caller uses to run an operation.

The HTTP API, the CLI, the agent tools, MCP and the web page call
:meth:`ExecutionService.invoke`; the approvals service calls
:meth:`ExecutionService.run_approved` once a person approved; Test connection is
:meth:`ExecutionService.connection_test`. In order (DESIGN §1): resolve the serving
version and the operation → validate the parameters (``params.py``) → the approval gate
(DESIGN §6) → credential values → rate limits and the concurrency cap → run (REST through
the sandbox pool with the host's egress policy, SQL through the SQL runner; limits from
``limits.py``, retries from ``retry.py``) → redaction → the result envelope of DESIGN §8.
Every call is recorded in the execution log.

Modules: ``service.py`` (the facade: resolve, credentials, hold for approval, dispatch),
``throttle.py`` (retries check, rate limits, concurrency cap), ``connector.py`` (a
connector run in the sandbox: egress, files, connector log lines), ``sql.py`` (a SQL
call through the SQL runner, with retries), ``record.py`` (the envelope, redaction and
the execution-log record of one call).
"""

from bollard.platform.execution.service import ExecutionService

__all__ = ["ExecutionService"]
