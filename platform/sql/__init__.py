"""The SQL runner: placeholder compiler, engines and execution (DESIGN §5)."""

from .placeholders import CompiledQuery, compile_query, find_placeholders, split_statements
from .types import SqlError, SqlResult

__all__ = [
    "CompiledQuery",
    "SqlError",
    "SqlResult",
    "compile_query",
    "find_placeholders",
    "split_statements",
]
