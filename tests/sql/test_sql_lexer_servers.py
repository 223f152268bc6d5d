"""Bollard's statement split against the servers' own (DESIGN §5; hardening issue item 12).

For generated SQL-ish text (comments of every kind, strings, quoted identifiers, dollar
quotes, executable comments, with `;`, quotes, backslashes, `--`, `*/`, CR and U+00A0
inside), every statement Bollard splits off is sent alone to the real server:

- MariaDB, on a connection *with* multi-statement mode (so a hidden second statement
  would show as a second result or an error after the first): at most one statement
  runs. When the whole text runs cleanly there, Bollard's statements, each run on a
  connection without multi-statement mode (Bollard's own), return the same results.
- PostgreSQL: each statement PREPAREs (the server refuses "multiple commands" in a
  prepared statement) unless it is invalid SQL; when the whole text runs cleanly as one
  simple query (psql -c), Bollard's statements, prepared one by one, return the same
  results.

MariaDB/MySQL text with a version-gated executable comment (``/*!NNNNN``, ``/*M!``) is
refused by Bollard (its statements depend on the server's version) and skipped here.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import subprocess
import warnings
from typing import Any

import aiomysql
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.constants import CLIENT
from sqlalchemy import make_url

from bollard.platform.sql.lexer import split_statements, version_gated_comment
from tests.support.databases import MYSQL_URL, PG_URL, unavailable

EXAMPLES = int(os.environ.get("BOLLARD_LEXER_EXAMPLES", "100"))

_CHARS = [
    ";",
    "'",
    '"',
    "\\",
    "-",
    "*",
    "/",
    "#",
    "\n",
    "\r",
    "$",
    "!",
    "M",
    "a",
    "1",
    " ",
    "\t",
    "\u00a0",
    "`",
]
content = st.lists(st.sampled_from(_CHARS), max_size=6).map("".join)
blank = st.sampled_from([" ", "\t", "\n", "\r", "\x0c", "\u00a0", "\r\n"])
line_end = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def noise(draw: st.DrawFn) -> str:
    """Something that may sit between two tokens: blanks and comments."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(blank)
    if kind == 1:
        sep = draw(st.sampled_from([" ", "\t", "\u00a0", "\x01", "", "-", "a"]))
        return "--" + sep + draw(content) + draw(line_end)
    if kind == 2:
        return "#" + draw(content) + draw(line_end)
    if kind == 3:
        return "/*" + draw(content) + "*/"
    if kind == 4:
        return "/*" + draw(content) + "/*" + draw(content) + "*/" + draw(content) + "*/"
    opener = draw(st.sampled_from(["/*!", "/*!99999", "/*M!", "/*!10000", "/*M!100000"]))
    return opener + " " + draw(content) + "*/"


@st.composite
def literal(draw: st.DrawFn) -> str:
    """An extra output column: a string, quoted identifier or dollar quote."""
    open_, close = draw(
        st.sampled_from([("'", "'"), ('"', '"'), ("E'", "'"), ("$$", "$$"), ("$a$", "$a$"), ("`", "`")])
    )
    return ", " + open_ + draw(content) + close


@st.composite
def statement(draw: st.DrawFn, marker: int) -> str:
    gaps = [draw(st.lists(noise(), max_size=2).map("".join)) for _ in range(3)]
    extra = draw(st.lists(literal(), max_size=2).map("".join))
    return f"SELECT {gaps[0] or ' '}{marker}{gaps[1]}{extra}{gaps[2]}"


@st.composite
def script(draw: st.DrawFn) -> tuple[str, int]:
    n = draw(st.integers(1, 3))
    return ";".join(draw(statement(k + 1)) for k in range(n)), n


def _mysql_kw() -> dict[str, Any]:
    u = make_url(MYSQL_URL)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 3306,
        "user": u.username or "root",
        "password": u.password or "",
        "db": u.database or None,
        "connect_timeout": 3,
    }


async def _mysql(multi: bool) -> aiomysql.Connection:
    conn = aiomysql.Connection(**_mysql_kw())
    if not multi:
        conn.client_flag &= ~CLIENT.MULTI_STATEMENTS
    await conn._connect()
    return conn


async def _mysql_results(conn: aiomysql.Connection, sql: str) -> tuple[list[Any], bool]:
    """First column of each result the server returns for ``sql``, and whether it
    stopped at an error."""
    out: list[Any] = []
    cur = await conn.cursor()
    try:
        with warnings.catch_warnings():  # the server's notes ("Truncated incorrect DOUBLE value")
            warnings.simplefilter("ignore")
            await cur.execute(sql)
        while True:
            rows = await cur.fetchall()
            out.append(rows[0][0] if rows else None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                more = await cur.nextset()
            if not more:
                return out, False
    except Exception:
        return out, True
    finally:
        await cur.close()


def _run(loop: asyncio.AbstractEventLoop, check: Any) -> None:
    try:
        check()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())


def test_mariadb_runs_each_bollard_statement_as_one() -> None:
    loop = asyncio.new_event_loop()
    try:
        try:
            multi = loop.run_until_complete(_mysql(True))
            single = loop.run_until_complete(_mysql(False))
        except Exception as exc:
            unavailable(f"mysql test server unreachable: {exc}")
            return

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(script())
        def check(case: tuple[str, int]) -> None:
            text, _ = case
            if version_gated_comment(text, engine="mysql"):
                return  # refused by Bollard (plan.py): the split depends on the server version
            parts = split_statements(text, engine="mysql")
            for part in parts:
                results, error = loop.run_until_complete(_mysql_results(multi, part))
                # a second statement shows as a second result or an error after the first
                assert len(results) <= 1 and not (results and error), (part, results, error)
            server, server_error = loop.run_until_complete(_mysql_results(multi, text))
            if server_error:
                return
            ours = []
            for part in parts:
                results, error = loop.run_until_complete(_mysql_results(single, part))
                assert not error and len(results) == 1, (part, results)
                ours.extend(results)
            assert ours == server, (text, parts)

        try:
            _run(loop, check)
        finally:
            loop.run_until_complete(multi.ensure_closed())
            loop.run_until_complete(single.ensure_closed())
    finally:
        loop.close()


async def _pg_prepare(conn: asyncpg.Connection, sql: str) -> tuple[Any, str | None]:
    try:
        stmt = await conn.prepare(sql)
        rows = await stmt.fetch()
        return (rows[0][0] if len(rows[0]) else "") if rows else None, None
    except asyncpg.PostgresError as exc:
        return None, str(exc)


def _pg_server_split(sql: str) -> list[str] | None:
    """The first column of every result the server returns for ``sql`` sent as one
    simple query (psql -c sends the text as is and, since PostgreSQL 15, prints every
    result), or None when the server stops at an error."""
    psql = shutil.which("psql")
    assert psql is not None
    done = subprocess.run(
        [psql, PG_URL, "-X", "--csv", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if done.returncode != 0:
        return None
    return [row[0] if row else "" for row in csv.reader(io.StringIO(done.stdout))]


def test_postgres_prepares_each_bollard_statement_as_one() -> None:
    loop = asyncio.new_event_loop()
    try:
        try:
            conn = loop.run_until_complete(asyncpg.connect(PG_URL, timeout=3))
        except Exception as exc:
            unavailable(f"postgres test server unreachable: {exc}")
            return
        if shutil.which("psql") is None:
            loop.run_until_complete(conn.close())
            pytest.skip("psql (15 or later) is needed to read the server's own split")

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(script())
        def check(case: tuple[str, int]) -> None:
            text, _ = case
            parts = split_statements(text, engine="postgres")
            outcomes = [loop.run_until_complete(_pg_prepare(conn, part)) for part in parts]
            for part, (_, error) in zip(parts, outcomes, strict=True):
                assert error is None or "multiple commands" not in error, (part, error)
            server = _pg_server_split(text)
            if server is not None:
                assert [error for _, error in outcomes] == [None] * len(parts), (text, parts, outcomes)
                assert [str(value) for value, _ in outcomes] == server, (text, parts)

        try:
            _run(loop, check)
        finally:
            loop.run_until_complete(conn.close())
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("engine", "text", "count"),
    [
        # MariaDB: `--` + U+00A0 is no comment, `--` + a control character is one
        ("mysql", "SELECT 1 --\u00a0; SELECT 2", 2),
        ("mysql", "SELECT 1 --\x01; SELECT 2\nSELECT 3", 1),
        ("mysql", "SELECT 1 --", 1),
        # executable comments are code; plain comments do not nest on MariaDB
        ("mysql", "SELECT 1 /*! ; SELECT 2 */", 2),
        ("mysql", "SELECT 1 /* /* */ ; SELECT 2", 2),
        ("postgres", "SELECT 1 /* /* */ ; */ SELECT 2", 1),
        # PostgreSQL ends a `--` comment at CR too
        ("postgres", "SELECT 1 -- c\r; SELECT 2", 2),
        ("mysql", "SELECT 1 -- c\r; SELECT 2", 1),
        # E'' is a string prefix on PostgreSQL only; elsewhere `\` does not escape in sqlite
        ("postgres", "SELECT E'\\'; SELECT 2'", 1),
        ("sqlite", "SELECT E'\\'; SELECT 2'", 2),
        ("postgres", "SELECT '\\'; SELECT 2", 2),
        ("mysql", "SELECT '\\'; SELECT 2'", 1),
        # backticks quote identifiers on MariaDB and SQLite, not on PostgreSQL
        ("mysql", "SELECT `;` FROM t", 1),
        ("postgres", "SELECT 1 #` ; SELECT 2`", 2),
    ],
)
def test_engine_lexing_rules(engine: str, text: str, count: int) -> None:
    assert len(split_statements(text, engine=engine)) == count
