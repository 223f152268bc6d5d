"""The SQL runner: placeholder compiler, engines and execution (DESIGN §5).

``compile_query``/``find_placeholders`` (placeholders.py), ``build_engine`` (engines.py),
``EngineCache`` (engine_cache.py), ``run_sql``/``check_sql_connection`` (runner.py),
``SqlResult`` (types.py), ``SqlError`` (platform/errors.py). The module map and the design:
docs/sql-runner.md.
"""

from bollard.platform.errors import SqlError

from .engine_cache import EngineCache
from .engines import EngineHandle, build_engine
from .placeholders import CompiledQuery, compile_query, find_placeholders, split_statements
from .runner import check_sql_connection, run_sql
from .types import SqlResult

__all__ = [
    "CompiledQuery",
    "EngineCache",
    "EngineHandle",
    "SqlError",
    "SqlResult",
    "build_engine",
    "compile_query",
    "find_placeholders",
    "run_sql",
    "split_statements",
    "check_sql_connection",
]
