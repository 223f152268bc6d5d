"""SQL Server reads (DESIGN §5; hardening issue item 17).

SQL Server has no read-only transaction, and T-SQL needs no ``;`` between statements
(``SELECT 1 COMMIT DELETE FROM t`` is three), so a keyword check cannot tell a read
from a write. ``check_mssql_read`` parses the manifest query with sqlglot's T-SQL
dialect (``@name`` placeholders are T-SQL variables to it, at the places the bind
parameters take) and accepts only one SELECT (or ``WITH … SELECT``, or a set
operation of SELECTs) without ``INTO``, ``EXEC``, transaction control, data-changing
statements or pass-through functions (``OPENQUERY``/``OPENROWSET``/``OPENDATASOURCE``
run text on another server). A T-SQL reserved word that sqlglot read as an unquoted
name (``SELECT 1 SHUTDOWN``: an alias to sqlglot, a statement to the server) is refused
too. This is a filter, not a sandbox: the database role is the real gate on SQL
Server; give a read-only integration a role that can only read.
"""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import SqlglotError

from bollard.platform.errors import SqlError

__all__ = ["check_mssql_read"]

# Reserved keywords of Transact-SQL ("Reserved Keywords (Transact-SQL)", Microsoft Learn):
# never an unquoted name on the server.
_TSQL_RESERVED = frozenset(
    [
        "ADD",
        "ALL",
        "ALTER",
        "AND",
        "ANY",
        "AS",
        "ASC",
        "AUTHORIZATION",
        "BACKUP",
        "BEGIN",
        "BETWEEN",
        "BREAK",
        "BROWSE",
        "BULK",
        "BY",
        "CASCADE",
        "CASE",
        "CHECK",
        "CHECKPOINT",
        "CLOSE",
        "CLUSTERED",
        "COALESCE",
        "COLLATE",
        "COLUMN",
        "COMMIT",
        "COMPUTE",
        "CONSTRAINT",
        "CONTAINS",
        "CONTAINSTABLE",
        "CONTINUE",
        "CONVERT",
        "CREATE",
        "CROSS",
        "CURRENT",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "CURSOR",
        "DATABASE",
        "DBCC",
        "DEALLOCATE",
        "DECLARE",
        "DEFAULT",
        "DELETE",
        "DENY",
        "DESC",
        "DISK",
        "DISTINCT",
        "DISTRIBUTED",
        "DOUBLE",
        "DROP",
        "DUMP",
        "ELSE",
        "END",
        "ERRLVL",
        "ESCAPE",
        "EXCEPT",
        "EXEC",
        "EXECUTE",
        "EXISTS",
        "EXIT",
        "EXTERNAL",
        "FETCH",
        "FILE",
        "FILLFACTOR",
        "FOR",
        "FOREIGN",
        "FREETEXT",
        "FREETEXTTABLE",
        "FROM",
        "FULL",
        "FUNCTION",
        "GOTO",
        "GRANT",
        "GROUP",
        "HAVING",
        "HOLDLOCK",
        "IDENTITY",
        "IDENTITY_INSERT",
        "IDENTITYCOL",
        "IF",
        "IN",
        "INDEX",
        "INNER",
        "INSERT",
        "INTERSECT",
        "INTO",
        "IS",
        "JOIN",
        "KEY",
        "KILL",
        "LEFT",
        "LIKE",
        "LINENO",
        "LOAD",
        "MERGE",
        "NATIONAL",
        "NOCHECK",
        "NONCLUSTERED",
        "NOT",
        "NULL",
        "NULLIF",
        "OF",
        "OFF",
        "OFFSETS",
        "ON",
        "OPEN",
        "OPENDATASOURCE",
        "OPENQUERY",
        "OPENROWSET",
        "OPENXML",
        "OPTION",
        "OR",
        "ORDER",
        "OUTER",
        "OVER",
        "PERCENT",
        "PIVOT",
        "PLAN",
        "PRECISION",
        "PRIMARY",
        "PRINT",
        "PROC",
        "PROCEDURE",
        "PUBLIC",
        "RAISERROR",
        "READ",
        "READTEXT",
        "RECONFIGURE",
        "REFERENCES",
        "REPLICATION",
        "RESTORE",
        "RESTRICT",
        "RETURN",
        "REVERT",
        "REVOKE",
        "RIGHT",
        "ROLLBACK",
        "ROWCOUNT",
        "ROWGUIDCOL",
        "RULE",
        "SAVE",
        "SCHEMA",
        "SECURITYAUDIT",
        "SELECT",
        "SEMANTICKEYPHRASETABLE",
        "SEMANTICSIMILARITYDETAILSTABLE",
        "SEMANTICSIMILARITYTABLE",
        "SESSION_USER",
        "SET",
        "SETUSER",
        "SHUTDOWN",
        "SOME",
        "STATISTICS",
        "SYSTEM_USER",
        "TABLE",
        "TABLESAMPLE",
        "TEXTSIZE",
        "THEN",
        "TO",
        "TOP",
        "TRAN",
        "TRANSACTION",
        "TRIGGER",
        "TRUNCATE",
        "TRY_CONVERT",
        "TSEQUAL",
        "UNION",
        "UNIQUE",
        "UNPIVOT",
        "UPDATE",
        "UPDATETEXT",
        "USE",
        "USER",
        "VALUES",
        "VARYING",
        "VIEW",
        "WAITFOR",
        "WHEN",
        "WHERE",
        "WHILE",
        "WITH",
        "WITHIN",
        "WRITETEXT",
    ]
)
_PASS_THROUGH = frozenset({"OPENQUERY", "OPENROWSET", "OPENDATASOURCE"})
# Nodes no read may hold anywhere: writes, DDL, procedure calls, transaction control,
# and statements sqlglot could only keep as raw text.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Into,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Execute,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Command,
    exp.Set,
    exp.Use,
)


def _refuse(why: str) -> SqlError:
    return SqlError(
        "read_only",
        f"a SQL Server read must be one SELECT ({why}); use a write operation for anything "
        "else, and keep the credential's database role to reading",
    )


def _forbidden_name(tree: exp.Expression) -> str | None:
    """The first pass-through function or unquoted reserved word used as a name."""
    for node in tree.walk():
        if isinstance(node, exp.Func | exp.Anonymous):
            name = str(node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name in _PASS_THROUGH:
                return name
        if isinstance(node, exp.Identifier) and not node.quoted:
            word = str(node.name).upper()
            if word in _TSQL_RESERVED:
                return word
    return None


@functools.lru_cache(maxsize=512)
def check_mssql_read(query: str) -> None:
    """Refuse a SQL Server read ``query`` (the manifest text, ``@name`` placeholders
    included) that is not exactly one SELECT without INTO, EXEC, transaction control,
    data-changing statements or pass-through functions. Raises SqlError("read_only")."""
    try:
        trees = [t for t in sqlglot.parse(query, read="tsql") if t is not None]
    except SqlglotError:
        raise _refuse("it does not parse as one") from None
    if len(trees) != 1:
        raise _refuse(f"it holds {len(trees)} statements")
    [tree] = trees
    if not isinstance(tree, exp.Select | exp.SetOperation):
        raise _refuse(f"it is a {tree.key.upper()} statement")
    bad = next((n for n in tree.walk() if isinstance(n, _FORBIDDEN_NODES)), None)
    if bad is not None:
        raise _refuse(f"it holds {bad.key.upper()}")
    if (name := _forbidden_name(tree)) is not None:
        raise _refuse(f"it uses {name}")
