"""The @name placeholder tokenizer and compiler (DESIGN §5)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite

from bollard.platform.sql import SqlError, compile_query, find_placeholders, split_statements
from bollard.platform.sql.placeholders import leading_keyword

PROTEL = Path("/work/shared/corpus/tale-manifests/protel/config.json")

DIALECTS = {
    "postgres": postgresql.asyncpg.dialect(),
    "mysql": mysql.aiomysql.dialect(),
    "sqlite": sqlite.aiosqlite.dialect(),
    "mssql": mssql.pymssql.dialect(paramstyle="pyformat"),
}


def rendered(sql: str, engine: str | None = None, schema: dict | None = None) -> str:
    """The SQL text a driver would receive for ``sql`` on ``engine`` (postgres if None)."""
    cq = compile_query(sql, schema or {}, engine=engine)
    return str(cq.clause.compile(dialect=DIALECTS[engine or "postgres"]))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE id = @id", ["id"]),
        ("SELECT @a, @b, @a", ["a", "b"]),
        ("SELECT '@x' AS s, @y", ["y"]),
        ("SELECT 'it''s @x' , @y", ["y"]),
        ("SELECT E'it\\'s @x', @y", ["y"]),
        ("SELECT $$ @x $$, @y", ["y"]),
        ("SELECT $body$ '@x' $notend$ @z $body$, @y", ["y"]),
        ('SELECT "@x" FROM t WHERE c = @y', ["y"]),
        ("SELECT `@x` FROM t WHERE c = @y", ["y"]),
        ("SELECT [@x] FROM t WHERE c = @y", ["y"]),
        ("SELECT [a]]@x] FROM t WHERE c = @y", ["y"]),
        ("SELECT 1 -- @x\n, @y", ["y"]),
        ("SELECT /* @x */ @y", ["y"]),
        ("SELECT @@ROWCOUNT, @@version, @y", ["y"]),
        ("SELECT x::date, @a::int FROM t", ["a"]),
        ("SELECT 'a' + @b+@c, (@d)", ["b", "c", "d"]),
        ("GRANT ALL ON db.* TO 'u'@'localhost'", []),
        ("SELECT user@host, @ok", ["ok"]),
        ("SELECT @1, @_x1", ["_x1"]),
        ("SELECT '10:30', @t", ["t"]),
        ("SELECT 'unterminated @x", []),
        ("SELECT /* unterminated @x", []),
        ("SELECT @größe", ["größe"]),
    ],
)
def test_find_placeholders_neutral(sql: str, expected: list[str]) -> None:
    assert find_placeholders(sql) == expected


@pytest.mark.parametrize(
    ("sql", "engine", "expected"),
    [
        # PostgreSQL: brackets are subscripts, block comments nest.
        ("SELECT arr[@i] FROM t", "postgres", ["i"]),
        ("SELECT arr[@i] FROM t", "mssql", []),
        ("SELECT /* a /* @x */ @y */ @z", "postgres", ["z"]),
        ("SELECT /* a /* @x */ @y */ @z", "sqlite", ["y", "z"]),
        # MySQL: backslash escapes, # comments, `--` needs a blank.
        ("SELECT 'it\\'s @x', @y", "mysql", ["y"]),
        ('SELECT "a\\"@x", @y', "mysql", ["y"]),
        ("SELECT 1 # @x\n, @y", "mysql", ["y"]),
        ("SELECT 1--@x", "mysql", ["x"]),
        ("SELECT 1-- @x\n, @y", "mysql", ["y"]),
        # Dollar quotes are PostgreSQL's only.
        ("SELECT $$ @x $$", "mssql", ["x"]),
    ],
)
def test_find_placeholders_per_engine(sql: str, engine: str, expected: list[str]) -> None:
    assert find_placeholders(sql, engine=engine) == expected


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SQL engine"):
        find_placeholders("SELECT 1", engine="oracle")


def _placeholders_from_schema(op: dict) -> set[str]:
    return set((op.get("parametersSchema") or {}).get("properties", {}))


def test_protel_corpus_placeholders_match_declared_parameters() -> None:
    manifest = json.loads(PROTEL.read_text())
    ops = [op for op in manifest["operations"] if op.get("query")]
    assert len(ops) >= 30
    for op in ops:
        query = op["query"]
        found = find_placeholders(query, engine="mssql")
        # Every `@name` spelled in the query (outside '…' literals, which hold no `@`
        # in protel) is found, and each is a declared parameter; nothing else is.
        spelled = {m for m in re.findall(r"(?<!@)@([A-Za-z_]\w*)", query)}
        spelled -= {"ROWCOUNT"}
        assert set(found) == spelled, op["name"]
        assert set(found) == _placeholders_from_schema(op), op["name"]
        assert find_placeholders(query) == found  # the neutral reading agrees


def test_protel_queries_render_without_at_signs_or_stray_binds() -> None:
    manifest = json.loads(PROTEL.read_text())
    for op in manifest["operations"]:
        schema = op.get("parametersSchema") or {}
        cq = compile_query(op["query"], schema, engine="mssql")
        sql = str(cq.clause.compile(dialect=DIALECTS["mssql"]))
        for name in cq.names:
            assert f"@{name}" not in sql
            assert f"%({name})s" in sql
        # pymssql formats with pyformat yet takes a literal `%` as is
        if "LIKE '%'" in op["query"]:
            assert "LIKE '%' + REPLACE" in sql


def test_colons_in_literals_and_casts_are_not_binds() -> None:
    sql = "SELECT '10:30' AS t, x::date, @a::int, 'a\\:b', :notabind FROM t"
    out = rendered(sql, "postgres", {"properties": {"a": {"type": "integer"}}})
    assert out == ("SELECT '10:30' AS t, x::date, $1::BIGINT::int, 'a\\:b', :notabind FROM t")
    assert compile_query(sql, {}).names == ("a",)


def test_placeholder_after_colon_still_binds() -> None:
    out = rendered("SELECT arr[1:@n] FROM t", "postgres", {"properties": {"n": {"type": "integer"}}})
    assert out == "SELECT arr[1: $1::BIGINT] FROM t"


def test_percent_is_doubled_for_format_drivers_only() -> None:
    sql = "SELECT * FROM t WHERE name LIKE '%' || @q || '%'"
    assert "LIKE '%%' || %s || '%%'" in rendered(sql, "mysql")
    assert "LIKE '%' || $1::VARCHAR || '%'" in rendered(sql, "postgres")
    assert "LIKE '%' || ? || '%'" in rendered(sql, "sqlite")


@pytest.mark.parametrize(
    ("prop", "value", "bound", "pg_cast"),
    [
        ({"type": "string", "format": "date"}, "2024-03-01", date(2024, 3, 1), "DATE"),
        (
            {"type": "string", "format": "date-time"},
            "2024-03-01T10:00:00+02:00",
            datetime(2024, 3, 1, 8, 0),
            "TIMESTAMP WITHOUT TIME ZONE",
        ),
        ({"type": "string", "format": "time"}, "10:30", time(10, 30), "TIME WITHOUT TIME ZONE"),
        ({"type": "integer"}, 7, 7, "BIGINT"),
        ({"type": "integer"}, 7.0, 7, "BIGINT"),
        ({"type": "number"}, 7, 7, "BIGINT"),
        ({"type": "number"}, 2.5, Decimal("2.5"), "NUMERIC"),
        ({"type": "number"}, 0.1, Decimal("0.1"), "NUMERIC"),
        ({"type": "boolean"}, True, True, "BOOLEAN"),
        ({"type": "string"}, "x", "x", "VARCHAR"),
        ({"type": ["string", "null"]}, "x", "x", "VARCHAR"),
        ({"type": "object"}, {"a": 1}, '{"a": 1}', "VARCHAR"),
        ({}, 5, 5, "BIGINT"),
        ({}, "s", "s", "VARCHAR"),
    ],
)
def test_parameter_typing(prop: dict, value: object, bound: object, pg_cast: str) -> None:
    cq = compile_query("SELECT @p", {"properties": {"p": prop}}, engine="postgres")
    [stmt] = cq.bind({"p": value})
    assert stmt.values == {"p": bound}
    assert str(stmt.clause.compile(dialect=DIALECTS["postgres"])) == f"SELECT $1::{pg_cast}"


def test_omitted_parameters_bind_as_typed_nulls() -> None:
    schema = {
        "properties": {
            "status": {"type": "string"},
            "fromDate": {"type": "string", "format": "date"},
        }
    }
    cq = compile_query(
        "SELECT * FROM r WHERE (@status IS NULL OR status = @status) AND d >= @fromDate",
        schema,
        engine="postgres",
    )
    [stmt] = cq.bind({"fromDate": "2024-01-01"})
    assert stmt.values == {"status": None, "fromDate": date(2024, 1, 1)}
    compiled = str(stmt.clause.compile(dialect=DIALECTS["postgres"]))
    assert "($1::VARCHAR IS NULL OR status = $1::VARCHAR)" in compiled
    assert "d >= $2::DATE" in compiled


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ({"type": "string", "format": "date"}, "01/02/2024"),
        ({"type": "string", "format": "date"}, "2024-02-30"),
        ({"type": "integer"}, 1.5),
        ({"type": "integer"}, True),
        ({"type": "number"}, "abc"),
        ({"type": "number"}, float("nan")),
        ({"type": "boolean"}, "yes"),
        ({"type": "string", "format": "time"}, "10:30+02:00"),
    ],
)
def test_invalid_values_raise_invalid_params(prop: dict, value: object) -> None:
    cq = compile_query("SELECT @p", {"properties": {"p": prop}})
    with pytest.raises(SqlError) as err:
        cq.bind({"p": value})
    assert err.value.code == "invalid_params"
    assert "'p'" in err.value.message


def test_split_statements() -> None:
    sql = "UPDATE t SET a = ';' WHERE id = @id; -- done;\nSELECT $$;$$ AS x;  ;\n/* ; */"
    assert split_statements(sql, engine="postgres") == [
        "UPDATE t SET a = ';' WHERE id = @id",
        " -- done;\nSELECT $$;$$ AS x",
    ]
    cq = compile_query(sql, {}, engine="postgres")
    assert cq.statement_keywords == ("UPDATE", "SELECT")
    assert cq.statement_names == (("id",), ())


@pytest.mark.parametrize(
    ("sql", "engine", "keyword"),
    [
        # PostgreSQL and SQL Server block comments nest: the server runs COMMIT
        ("/* /* */ SELECT */ COMMIT", "postgres", "COMMIT"),
        ("/* /* */ SELECT */ DO $$ BEGIN END $$", "postgres", "DO"),
        ("/* /* */ SELECT */ EXEC p", "mssql", "EXEC"),
        # ... MySQL's and SQLite's do not
        ("/* /* */ SELECT 1", "sqlite", "SELECT"),
        ("(( -- c\n SELECT 1))", "postgres", "SELECT"),
        ("# c\nSET x = 1", "mysql", "SET"),
        ("--c\nSET x = 1", "mysql", "-"),  # MySQL's -- needs a space: an operator
        # MySQL/MariaDB run executable comments (unless versioned above the server)
        ("/*!SET @@session.tx_read_only = 0, @x = */ (SELECT 1)", "mysql", "/*!"),
        ("/*M!100100 SET x = 1 */ SELECT 1", "mysql", "/*!"),
        ("/*!99999 SELECT */ SET x = 1", "mysql", "/*!"),
        ("/*!SET x = 1 */ SELECT 1", "postgres", "SELECT"),
    ],
)
def test_leading_keyword_reads_comments_as_the_server_does(sql: str, engine: str, keyword: str) -> None:
    assert leading_keyword(sql, engine=engine) == keyword
    assert compile_query(sql, {}, engine=engine).statement_keywords == (keyword,)


# --- properties -------------------------------------------------------------------

values = st.one_of(
    st.text(),
    st.sampled_from(["'; DROP TABLE t; --", "' OR '1'='1", "@x", "-- c", "/*", "a:b", "%s"]),
    st.text(alphabet="';\"@-/*%:$\\` x", max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(value=values, engine=st.sampled_from(list(DIALECTS)))
def test_values_never_enter_the_sql_text(value: str, engine: str) -> None:
    sql = "SELECT * FROM t WHERE a = @v AND b = 'fixed' AND c = @v"
    cq = compile_query(sql, {"properties": {"v": {"type": "string"}}}, engine=engine)
    [stmt] = cq.bind({"v": value})
    [baseline] = cq.bind({"v": "baseline"})
    compiled = stmt.clause.compile(dialect=DIALECTS[engine])
    # The text sent to the driver does not depend on the value at all...
    assert str(compiled) == str(baseline.clause.compile(dialect=DIALECTS[engine]))
    assert "@v" not in str(compiled)
    # ...which travels only as a bound parameter.
    assert set(compiled.construct_params(stmt.values).values()) == {value}


def _quote(body: str, quote: str, close: str | None = None) -> str:
    close = close or quote
    return quote + body.replace(close, close + close) + close


literal_bodies = st.text(alphabet="@abx_ :;'\"`[]-/*\n$", max_size=30).map(lambda s: s + " @x ")


@settings(max_examples=300, deadline=None)
@given(body=literal_bodies, kind=st.sampled_from(["'", '"', "`", "[", "--", "/*", "$$"]))
def test_at_names_inside_literals_comments_identifiers_are_not_placeholders(body: str, kind: str) -> None:
    if kind == "[":
        wrapped = _quote(body, "[", "]")
    elif kind == "--":
        wrapped = "--" + body.replace("\n", " ") + "\n"
    elif kind == "/*":
        wrapped = "/*" + body.replace("*/", "").replace("/*", "") + "*/"
    elif kind == "$$":
        wrapped = "$q$" + body.replace("$q$", "") + "$q$"
    else:
        wrapped = _quote(body, kind)
    sql = f"SELECT {wrapped} AS c, @real FROM t"
    assert find_placeholders(sql) == ["real"]
    # and the literal reaches the database unchanged
    out = rendered(sql, None, {"properties": {"real": {"type": "string"}}})
    assert wrapped in out
