"""The host's SQL service: one :class:`EngineCache` and the glue from manifests to the runner.

The execution service calls :meth:`SqlService.run` for SQL operations and
:meth:`SqlService.test` for Test connection; both take the integration version, so
the engine is rebuilt whenever the manifest or the credential values change (DESIGN §5).
"""

from __future__ import annotations

from typing import Any

from bollard.platform.errors import SqlError
from bollard.platform.manifest import Operation
from bollard.platform.packages import IntegrationVersion
from bollard.platform.settings import Settings

from .engines import EngineCache, EngineHandle, build_engine
from .runner import run_sql, test_sql_connection
from .types import SqlResult


class SqlService:
    """Engines per (integration, credential id), the operator ceilings, and disposal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engines = EngineCache()

    def _engine_args(self, version: IntegrationVersion) -> dict[str, Any]:
        cfg = version.manifest.sql_connection_config
        if cfg is None:
            raise SqlError("config_error", f"integration '{version.slug}' has no sqlConnectionConfig")
        data_dir = self.settings.data_dir.resolve()
        return {
            "engine": cfg.engine,
            "connection_config": cfg.model_dump(by_alias=True, exclude_none=True),
            "integration_dir": version.path.resolve(),
            "data_dir": data_dir,
            "allowed_roots": [version.path.resolve(), data_dir],
        }

    async def handle(
        self, version: IntegrationVersion, credential_id: str, values: dict[str, str]
    ) -> EngineHandle:
        """The pooled engine for (integration, credential id), rebuilt when either changed."""
        return await self.engines.get(
            version.slug, credential_id, credentials=values, **self._engine_args(version)
        )

    def security(self, version: IntegrationVersion, timeout_ms: int | None) -> dict[str, Any]:
        """``security`` with the caller's ``timeoutMs`` (only lowers) and the operator's
        query-timeout ceiling applied."""
        cfg = version.manifest.sql_connection_config
        sec = cfg.security.model_dump(by_alias=True, exclude_none=True) if cfg else {}
        current = sec.get("queryTimeoutMs", 30_000)
        if timeout_ms is not None:
            current = min(current, timeout_ms)
        sec["queryTimeoutMs"] = min(current, self.settings.max_query_timeout_ms)
        return sec

    async def run(
        self,
        version: IntegrationVersion,
        op: Operation,
        params: dict[str, Any],
        values: dict[str, str],
        *,
        credential_id: str,
        timeout_ms: int | None = None,
    ) -> SqlResult:
        """Run one SQL operation; raises :class:`SqlError`."""
        assert op.query is not None
        cfg = version.manifest.sql_connection_config
        handle = await self.handle(version, credential_id, values)
        return await run_sql(
            handle,
            query=op.query,
            operation_type=op.operation_type,
            schema=op.params_schema,
            params=params,
            security=self.security(version, timeout_ms),
            read_only_connection=bool(cfg and cfg.read_only),
            max_rows_ceiling=self.settings.max_result_rows,
        )

    async def test(
        self, version: IntegrationVersion, values: dict[str, str], *, timeout_ms: int = 10_000
    ) -> list[dict[str, Any]]:
        """Connect and ``SELECT 1`` on a fresh, throwaway engine (so unsaved values can be
        tested and the pool of saved ones is untouched); the steps as
        :func:`test_sql_connection` reports them."""
        try:
            args = self._engine_args(version)
            handle = build_engine(
                args.pop("engine"), args.pop("connection_config"), values, slug=version.slug, **args
            )
        except SqlError as e:
            return [{"name": "configure", "ok": False, "durationMs": 0, "message": e.message}]
        try:
            return await test_sql_connection(handle, timeout_ms=timeout_ms)
        finally:
            await handle.dispose()

    async def aclose(self) -> None:
        await self.engines.dispose_all()
