"""The host's SQL service: one :class:`EngineCache` and the glue from manifests to the runner.

The execution service calls :meth:`SqlService.run` for SQL operations and
:meth:`SqlService.test` for Test connection; both take the integration version, so
the engine is rebuilt whenever the manifest or the credential values change (DESIGN §5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bollard.platform.errors import SqlError
from bollard.platform.packages import IntegrationVersion
from bollard.platform.settings import Settings

from .engine_cache import EngineCache
from .engines import EngineHandle, build_engine
from .runner import check_sql_connection, run_sql
from .types import SqlResult

if TYPE_CHECKING:
    from bollard.platform.invocation import Call


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
            # sqlite: the integration folder and <data_dir>/sqlite/<slug>/ (sqlite.py)
            "data_dir": data_dir,
            "allow_privileged_roles": self.settings.sql_allow_privileged_roles,
        }

    async def handle(
        self, version: IntegrationVersion, credential_id: str, values: dict[str, str]
    ) -> EngineHandle:
        """The pooled engine for (integration, credential id), rebuilt when either changed."""
        return await self.engines.get(
            version.slug, credential_id, credentials=values, **self._engine_args(version)
        )

    async def run(self, call: Call, security: dict[str, Any]) -> SqlResult:
        """Run one SQL operation; ``security`` is the call's resolved
        ``sqlConnectionConfig.security`` (``LimitResolver.sql_security``: row cap and
        query timeout already merged with the caller's and the operator's limits).
        Raises :class:`SqlError`."""
        op, version = call.op, call.version
        assert op.query is not None
        cfg = version.manifest.sql_connection_config
        handle = await self.handle(version, call.credential_id, call.values)
        return await run_sql(
            handle,
            query=op.query,
            operation_type=op.operation_type,
            schema=op.params_schema,
            params=call.params,
            security=security,
            read_only_connection=bool(cfg and cfg.read_only),
        )

    async def test(
        self, version: IntegrationVersion, values: dict[str, str], *, timeout_ms: int = 10_000
    ) -> list[dict[str, Any]]:
        """Connect and ``SELECT 1`` on a fresh, throwaway engine (so unsaved values can be
        tested and the pool of saved ones is untouched); the steps as
        :func:`check_sql_connection` reports them."""
        try:
            args = self._engine_args(version)
            handle = build_engine(
                args.pop("engine"), args.pop("connection_config"), values, slug=version.slug, **args
            )
        except SqlError as e:
            return [{"name": "configure", "ok": False, "durationMs": 0, "message": e.message}]
        try:
            return await check_sql_connection(handle, timeout_ms=timeout_ms)
        finally:
            await handle.dispose()

    async def aclose(self) -> None:
        await self.engines.dispose_all()
