"""The SQL lexer behind ``@name`` placeholders, statement splitting and leading keywords
(DESIGN §5).

It finds ``@name`` placeholders and top-level ``;`` outside string literals, quoted
identifiers, comments, ``@@system_variables`` and ``::casts``.

Lexing rules differ by engine and are chosen with ``engine`` (``postgres``, ``mysql``,
``mssql``, ``sqlite`` or None for a neutral reading), so each engine's text is read
exactly as its server reads it (PostgreSQL ``scan.l``, MariaDB ``sql_lex.cc``, SQLite
``tokenize.c``); where a rule depends on server settings, the servers' defaults:

- strings ``'…'`` with ``''``; backslash escapes only where the server applies them:
  MySQL/MariaDB ``'…'`` and ``"…"`` (without ``NO_BACKSLASH_ESCAPES``) and PostgreSQL
  ``E'…'`` (``standard_conforming_strings = on``); ``E'…'`` is a string of its own on
  PostgreSQL (and None) only;
- quoted identifiers ``"…"`` (a string on MySQL); `` `…` `` on mysql, sqlite and None
  (an operator character on PostgreSQL); ``[…]`` on mssql, sqlite and None only (an
  array subscript on PostgreSQL, where ``arr[@i]`` holds a placeholder);
- ``--`` comments run to the end of the line (PostgreSQL: ``\n`` or ``\r``); on MySQL
  ``--`` starts a comment only when an ASCII blank or control character (or the end of
  the text) follows (``--\u00a0`` is two minus signs), and ``#`` starts one too;
- ``/* … */`` comments nest on PostgreSQL and SQL Server only; MySQL's executable
  comments ``/*! … */`` and ``/*M! … */`` (with an optional version number) are code:
  their text is lexed like any other, and a statement starting with one has the leading
  keyword ``"/*!"``;
- dollar quotes ``$$…$$`` / ``$tag$…$tag$`` on postgres and None only.

An ``@`` directly after a letter, digit or ``_`` (``user@host``) is not a placeholder.
Unterminated literals or comments run to the end of the text (the database reports them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "Lexicon",
    "find_placeholders",
    "leading_keyword",
    "lexicon",
    "scan",
    "split_statements",
    "version_gated_comment",
]

# PostgreSQL: a tag is an identifier without `$` (non-ASCII characters are letters).
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
# MariaDB/MySQL executable comment openers; 5 or 6 digits are a version number.
_EXEC_COMMENT = re.compile(r"/\*M?!(?:[0-9]{5}[0-9]?)?")


@dataclass(frozen=True)
class Lexicon:
    """One engine's lexing rules (see the module docstring)."""

    backslash_strings: bool = False
    hash_comments: bool = False
    bracket_identifiers: bool = True
    # `…` quotes an identifier (MySQL, SQLite); an operator character on PostgreSQL
    backtick_identifiers: bool = True
    nested_comments: bool = False
    dollar_quotes: bool = True
    # `--` starts a comment only before an ASCII blank or control character (MariaDB)
    dash_comment_needs_space: bool = False
    # `--` comments also end at `\r` (PostgreSQL's `non_newline` is `[^\n\r]`)
    cr_ends_line_comment: bool = False
    # E'…' (backslash escapes) is a string prefix (PostgreSQL)
    e_strings: bool = True
    # MySQL/MariaDB run the text of /*! … */ and /*M! … */ (unless a version number in
    # it is above the server's): lexed as code, which splits at every `;` a server
    # may see (a version-gated comment split that way fails to parse, never runs more).
    executable_comments: bool = False


_LEXICONS: dict[str | None, Lexicon] = {
    # neutral: every rule that makes more of the text code
    None: Lexicon(cr_ends_line_comment=True),
    "postgres": Lexicon(
        bracket_identifiers=False,
        backtick_identifiers=False,
        nested_comments=True,
        cr_ends_line_comment=True,
    ),
    "mysql": Lexicon(
        backslash_strings=True,
        hash_comments=True,
        bracket_identifiers=False,
        dollar_quotes=False,
        dash_comment_needs_space=True,
        e_strings=False,
        executable_comments=True,
    ),
    "mssql": Lexicon(nested_comments=True, dollar_quotes=False, e_strings=False, backtick_identifiers=False),
    "sqlite": Lexicon(dollar_quotes=False, e_strings=False),
}


def lexicon(engine: str | None) -> Lexicon:
    """The rules for ``engine``; raises ValueError for an unknown engine name."""
    try:
        return _LEXICONS[engine]
    except KeyError:
        raise ValueError(f"unknown SQL engine {engine!r}") from None


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """Index just past the literal opened at ``sql[i]``; a doubled quote escapes it."""
    n = len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(sql: str, i: int, nested: bool) -> int:
    n = len(sql)
    depth = 1
    j = i + 2
    while j < n:
        if sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        elif nested and sql.startswith("/*", j):
            depth += 1
            j += 2
        else:
            j += 1
    return n


def _skip_line(sql: str, i: int, lex: Lexicon) -> int:
    end = sql.find("\n", i)
    if lex.cr_ends_line_comment:
        cr = sql.find("\r", i, None if end < 0 else end)
        end = cr if cr >= 0 else end
    return len(sql) if end < 0 else end + 1


def _ends_dash_comment_marker(c: str) -> bool:
    # MariaDB's sql_lex.cc: my_isspace() or my_iscntrl() of the byte after `--`:
    # ASCII blanks (space, \t \n \v \f \r) and control characters; never U+00A0.
    return c == " " or ord(c) < 0x20 or c == "\x7f"


def _line_comment_at(sql: str, i: int, lex: Lexicon) -> bool:
    """Whether a line comment starts at ``sql[i]``: ``--`` (MySQL: followed by an ASCII
    blank or control character, or the end of the text), or ``#`` on MySQL."""
    if sql[i] == "#":
        return lex.hash_comments
    return sql.startswith("--", i) and (
        not lex.dash_comment_needs_space or i + 2 >= len(sql) or _ends_dash_comment_marker(sql[i + 2])
    )


def _word_end(sql: str, j: int) -> int:
    """Index of the first non-word character at or after ``j``."""
    n = len(sql)
    while j < n and _is_word(sql[j]):
        j += 1
    return j


def _skip_bracketed(sql: str, i: int) -> int:
    """Index just past the ``[…]`` identifier opened at ``sql[i]``; ``]]`` escapes a ``]``."""
    end = sql.find("]", i + 1)
    while end >= 0 and sql.startswith("]]", end):
        end = sql.find("]", end + 2)
    return len(sql) if end < 0 else end + 1


def _skip_dollar(sql: str, i: int) -> int:
    """Index just past the dollar quote (``$$…$$``, ``$tag$…$tag$``) opened at ``sql[i]``,
    or past the lone ``$``."""
    m = _DOLLAR_TAG.match(sql, i)
    if not m:
        return i + 1
    close = sql.find(m.group(0), m.end())
    return len(sql) if close < 0 else close + len(m.group(0))


def _skip_word(sql: str, i: int, lex: Lexicon) -> int:
    """Index just past the word (identifier, keyword, number) at ``sql[i]``, or past the
    PostgreSQL ``E'…'`` string (backslash escapes) it opens."""
    n = len(sql)
    j = i + 1
    # `$` may continue identifiers
    while j < n and (_is_word(sql[j]) or sql[j] == "$"):
        j += 1
    e_string = lex.e_strings and j - i == 1 and sql[i] in "eE" and j < n and sql[j] == "'"
    return _skip_quoted(sql, j, "'", True) if e_string else j


def _skip_token(sql: str, i: int, lex: Lexicon) -> int:
    """Index just past the literal, identifier, comment, word or character at ``sql[i]``
    (never an ``@`` or ``;``: :func:`scan` reads those)."""
    c = sql[i]
    if c in ("'", '"'):
        return _skip_quoted(sql, i, c, lex.backslash_strings)
    if c == "`" and lex.backtick_identifiers:
        return _skip_quoted(sql, i, "`", False)
    if c == "[" and lex.bracket_identifiers:
        return _skip_bracketed(sql, i)
    if _line_comment_at(sql, i, lex):
        return _skip_line(sql, i, lex)
    if sql.startswith("/*", i):
        return _skip_block_comment(sql, i, lex.nested_comments)
    if c == "$" and lex.dollar_quotes:
        return _skip_dollar(sql, i)
    if _is_word(c):
        return _skip_word(sql, i, lex)
    return i + 1


def _at_sign(sql: str, i: int) -> tuple[bool, int]:
    """``(is a placeholder, end)`` for the ``@`` at ``sql[i]``."""
    nxt = sql[i + 1] if i + 1 < len(sql) else ""
    if i > 0 and (_is_word(sql[i - 1]) or sql[i - 1] == "$"):
        return False, i + 1  # `user@host`: part of a word, not a placeholder
    if nxt == "@":
        return False, _word_end(sql, i + 2)  # @@system_variable: the marker and its name
    if nxt and (nxt.isalpha() or nxt == "_"):
        return True, _word_end(sql, i + 2)
    return False, i + 1


def scan(sql: str, lex: Lexicon) -> Iterator[tuple[str, int, int]]:
    """Yield ``("placeholder", start, end)``, ``(";", start, end)`` and, on MySQL,
    ``("gated", start, end)`` events: the opener of an executable comment whose text
    only some servers run (``/*M!``: MariaDB, not MySQL; ``/*!NNNNN``: servers of that
    version or later, MariaDB not 5.7.0-9.99.99).

    Everything else (literals, identifiers, comments, code) is skipped; callers treat
    the gaps between events as verbatim text.
    """
    n = len(sql)
    i = 0
    in_executable = False  # inside MySQL's /*! … */: code, closed by the next `*/`
    while i < n:
        c = sql[i]
        if c == "@":
            placeholder, end = _at_sign(sql, i)
            if placeholder:
                yield ("placeholder", i, end)
            i = end
        elif c == ";":
            yield (";", i, i + 1)
            i += 1
        elif in_executable and sql.startswith("*/", i):
            in_executable = False
            i += 2
        elif lex.executable_comments and (m := _EXEC_COMMENT.match(sql, i)):
            if m.end() - i > 3:  # `/*M!` or a version number: code or comment by server
                yield ("gated", i, m.end())
            in_executable = True
            i = m.end()
        else:
            i = _skip_token(sql, i, lex)


def find_placeholders(sql: str, *, engine: str | None = None) -> list[str]:
    """Names of the ``@name`` placeholders in ``sql``, unique, in order of first use.

    ``engine`` selects engine-specific lexing (see the module docstring); None reads
    the query neutrally. Raises ValueError for an unknown engine name.
    """
    seen: dict[str, None] = {}
    for kind, start, end in scan(sql, lexicon(engine)):
        if kind == "placeholder":
            seen.setdefault(sql[start + 1 : end], None)
    return list(seen)


def version_gated_comment(sql: str, *, engine: str | None = None) -> bool:
    """Whether ``sql`` holds a MySQL/MariaDB executable comment whose text runs on some
    servers and is a comment on others (``/*M! … */``, ``/*!NNNNN … */``): the
    statements the server sees then depend on its version, so no lexer can split such
    text the way every server does (MariaDB's ``sql_lex.cc``)."""
    return any(kind == "gated" for kind, _, _ in scan(sql, lexicon(engine)))


def split_statements(sql: str, *, engine: str | None = None) -> list[str]:
    """Split ``sql`` at top-level ``;`` into statements, dropping empty ones.

    Semicolons inside literals, identifiers, comments and dollar quotes do not split.
    Statements with bodies of their own (``CREATE TRIGGER … BEGIN …; END``) are not
    recognised and would be split.
    """
    parts: list[str] = []
    start = 0
    for kind, s, e in scan(sql, lexicon(engine)):
        if kind == ";":
            parts.append(sql[start:s])
            start = e
    parts.append(sql[start:])
    return [p for p in parts if leading_keyword(p, engine=engine)]


def leading_keyword(sql: str, *, engine: str | None = None) -> str:
    """The first word of a statement, upper-cased, skipping blanks, comments and ``(``.

    Comments are read as ``engine`` reads them (``split_statements``' rules: nested
    block comments on PostgreSQL and SQL Server, ``#`` on MySQL), so the word is the one
    the server starts executing. On MySQL a statement that starts with an executable
    comment (``/*! … */``, ``/*M! … */``) returns ``"/*!"``: whether the server runs
    the comment's text depends on its version. Returns "" when the statement has no
    code at all.
    """
    lex = lexicon(engine)
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace() or c == "(":
            i += 1
        elif _line_comment_at(sql, i, lex):
            i = _skip_line(sql, i, lex)
        elif sql.startswith("/*", i):
            if lex.executable_comments and sql.startswith(("/*!", "/*M!"), i):
                return "/*!"
            i = _skip_block_comment(sql, i, lex.nested_comments)
        else:
            j = _word_end(sql, i)
            return sql[i:j].upper() if j > i else c
    return ""
