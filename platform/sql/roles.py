"""Refusing privileged PostgreSQL roles (DESIGN §5; hardening issue item 13).

A read-only transaction still lets a superuser, or a member of
``pg_execute_server_program`` / ``pg_write_server_files`` / ``pg_read_server_files`` /
``pg_signal_backend``, run programs on the database server, read and write its files
(``COPY … TO PROGRAM``, ``pg_read_file``) and stop other sessions
(``pg_terminate_backend``), also from inside a function a SELECT calls, so no check of
the query text can stop it. Every new connection of an engine therefore checks its role
(``PRIVILEGED_ROLES_SQL``) and is refused unless the operator opts in with
``BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bollard.platform.errors import SqlError

__all__ = ["PRIVILEGED_ROLES", "PRIVILEGED_ROLES_SQL", "check_pg_role", "privileged_role_error"]

PRIVILEGED_ROLES = (
    "pg_execute_server_program",
    "pg_write_server_files",
    "pg_read_server_files",
    "pg_signal_backend",
)

# The roles the session's role is a member of (directly, through other roles, or able
# to SET ROLE to) that are superusers or one of PRIVILEGED_ROLES; the role itself counts.
PRIVILEGED_ROLES_SQL = (
    "SELECT r.rolname, r.rolsuper FROM pg_catalog.pg_roles r "
    "WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') "
    "AND (r.rolsuper OR r.rolname IN (" + ", ".join(f"'{name}'" for name in PRIVILEGED_ROLES) + "))"
)

_HOW = (
    "connect with a least-privilege role instead, e.g. CREATE ROLE bollard_app LOGIN PASSWORD '…'; "
    "GRANT CONNECT ON DATABASE <database> TO bollard_app; GRANT USAGE ON SCHEMA public TO bollard_app; "
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bollard_app; (plus INSERT, UPDATE, DELETE on the "
    "tables the write operations change), or have the operator allow privileged roles with "
    "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES=1"
)


def privileged_role_error(rows: Sequence[Sequence[Any]]) -> SqlError | None:
    """The refusal for the rows of ``PRIVILEGED_ROLES_SQL`` (``(rolname, rolsuper)``), or
    None when the role holds none of those privileges. Code ``config_error``, details
    ``{"reason": "privileged_role", "superuser": bool, "roles": [names]}``; the message
    names no user."""
    if not rows:
        return None
    superuser = any(bool(r[1]) for r in rows)
    roles = sorted({str(r[0]) for r in rows if str(r[0]) in PRIVILEGED_ROLES})
    what = "is a superuser" if superuser else "is a member of " + ", ".join(roles)
    return SqlError(
        "config_error",
        f"the credential's database role {what}, which lets any query, even a read, run programs "
        f"on the database server, read or write its files or stop other sessions; {_HOW}",
        details={"reason": "privileged_role", "superuser": superuser, "roles": roles},
    )


async def check_pg_role(con: Any) -> None:
    """Raise ``privileged_role_error`` for the role of ``con`` (an asyncpg connection)."""
    err = privileged_role_error(await con.fetch(PRIVILEGED_ROLES_SQL))
    if err is not None:
        raise err
