"""The bad-package corpus (DESIGN §10): each upload is refused with a message naming the
entry and the rule, and the integrations directory (listed recursively, hidden files and
sizes included) is exactly as it was before."""

from __future__ import annotations

import base64
import json
import random
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import Api
from tests.support.integrations import SIMPLE_CONNECTOR, rest_manifest, write_integration
from tests.support.zips import listing, make_zip, patch_entry, rename_local

URL = "/api/settings/integrations"
MANIFEST = json.dumps(rest_manifest(title="Weather", version=1)).encode()
CONNECTOR = SIMPLE_CONNECTOR.encode()
SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8">{}</svg>'
MAX = 1024 * 1024


def noise(n: int, seed: int = 1) -> bytes:
    """``n`` bytes of base64 text from a seeded generator: compresses about 4:3, not more."""
    rng = random.Random(seed)
    return base64.b64encode(rng.randbytes(n))[:n]


def good(**extra: bytes) -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    return [("config.json", MANIFEST), ("connector.py", CONNECTOR), *extra.items()]


def info(name: str, mode: int) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name)
    zi.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    zi.external_attr = mode << 16
    return zi


def with_extra(name: str, extra: bytes) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name)
    zi.extra = extra
    return zi


def with_comment(name: str) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name)
    zi.comment = b"see http://example.com"
    return zi


def bzip2(name: str) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name)
    zi.compress_type = zipfile.ZIP_BZIP2
    return zi


def svg_package(body: str) -> bytes:
    return make_zip(good(**{"icon.svg": SVG.format(body).encode()}))


def sql_manifest_undeclared_param() -> bytes:
    m = {
        "title": "Rooms",
        "version": 1,
        "type": "sql",
        "authMethod": "none",
        "sqlConnectionConfig": {"engine": "sqlite", "options": {"database": "rooms.db"}},
        "sqlOperations": [
            {
                "name": "get_room",
                "query": "SELECT * FROM rooms WHERE id = @nope",
                "parametersSchema": {"type": "object", "properties": {"id": {"type": "integer"}}},
            }
        ],
    }
    return make_zip([("config.json", json.dumps(m).encode())])


def declared_smaller() -> bytes:
    """A 60 KB README whose headers claim 100 bytes (a bomb's classic lie)."""
    data = make_zip(good(**{"README.md": noise(60_000)}))
    return patch_entry(data, "README.md", usize=100)


def declared_larger() -> bytes:
    """A 5-byte README whose headers claim 2000 bytes (CRC still right)."""
    data = make_zip(good(**{"README.md": b"hello"}))
    return patch_entry(data, "README.md", usize=2000)


def encrypted() -> bytes:
    data = make_zip(good())
    return patch_entry(data, "config.json", flags=0x1)


@dataclass
class Case:
    id: str
    body: Callable[[], dict[str, Any]]
    expect: list[str]
    status: int = 400
    form: dict[str, str] = field(default_factory=lambda: {"slug": "weather"})


def zipped(build: Callable[[], bytes]) -> Callable[[], dict[str, Any]]:
    return lambda: {"files": [("file", ("package.zip", build(), "application/zip"))]}


def file_set(*pairs: tuple[str, bytes]) -> Callable[[], dict[str, Any]]:
    return lambda: {"files": [("files", (name, data, "application/octet-stream")) for name, data in pairs]}


CASES = [
    Case("zip-slip-dotdot", zipped(lambda: make_zip([*good(), ("../x", b"x")])), ["'../x'", "'..'"]),
    Case("zip-slip-absolute", zipped(lambda: make_zip([*good(), ("/abs", b"x")])), ["'/abs'", "absolute"]),
    Case("zip-slip-drive", zipped(lambda: make_zip([*good(), ("C:\\x", b"x")])), ["'C:\\x'", "drive letter"]),
    Case(
        "zip-slip-backslash",
        zipped(lambda: make_zip([("pkg\\config.json", MANIFEST)])),
        ["'pkg\\config.json'", "backslash"],
    ),
    Case(
        "symlink",
        zipped(lambda: make_zip([*good(), (info("README.md", stat.S_IFLNK | 0o777), b"/etc/passwd")])),
        ["'README.md'", "symbolic link"],
    ),
    Case(
        "char-device",
        zipped(lambda: make_zip([*good(), (info("README.md", stat.S_IFCHR | 0o644), b"")])),
        ["'README.md'", "device or special file"],
    ),
    Case(
        "fifo",
        zipped(lambda: make_zip([*good(), (info("README.md", stat.S_IFIFO | 0o644), b"")])),
        ["'README.md'", "device or special file"],
    ),
    Case(
        "duplicate-names",
        zipped(lambda: make_zip([*good(), ("config.json", MANIFEST)])),
        ["'config.json'", "duplicate"],
    ),
    Case(
        "bomb-by-ratio",
        zipped(lambda: make_zip(good(**{"README.md": b"\0" * 400_000}))),
        ["'README.md'", "ratio", "zip bomb"],
    ),
    Case("declared-size-smaller", zipped(declared_smaller), ["'README.md'", "lies about the size"]),
    Case("declared-size-larger", zipped(declared_larger), ["'README.md'", "declares 2000 bytes but holds 5"]),
    Case(
        "nested-zip-by-name",
        zipped(lambda: make_zip([*good(), ("inner.zip", make_zip(good()))])),
        ["'inner.zip'", "nested archive"],
    ),
    Case(
        "nested-zip-by-content",
        zipped(lambda: make_zip(good(**{"README.md": make_zip(good())}))),
        ["'README.md'", "nested archive"],
    ),
    Case(
        "over-1-mb",
        zipped(
            lambda: make_zip(
                [
                    ("config.json", MANIFEST),
                    ("connector.py", noise(450_000, 2)),
                    ("README.md", noise(450_000, 3)),
                    ("icon.svg", noise(200_000, 4)),
                ]
            )
        ),
        ["declare", f"the limit is {MAX} bytes"],
    ),
    Case(
        "config-over-512-kb",
        zipped(lambda: make_zip([("config.json", noise(530_000))])),
        ["'config.json'", "declares 530000 bytes", "at most 524288 bytes"],
    ),
    Case(
        "two-top-folders",
        zipped(lambda: make_zip([("a/config.json", MANIFEST), ("b/config.json", MANIFEST)])),
        ["'a'", "'b'", "2 top folders"],
    ),
    Case(
        "root-and-top-folder",
        zipped(lambda: make_zip([("config.json", MANIFEST), ("pkg/connector.py", CONNECTOR)])),
        ["'config.json'", "next to the top folder 'pkg'"],
    ),
    Case(
        "subfolder",
        zipped(lambda: make_zip([("pkg/sub/config.json", MANIFEST)])),
        ["'pkg/sub/config.json'", "subfolder"],
    ),
    Case(
        "unknown-file-name",
        zipped(lambda: make_zip(good(**{"notes.txt": b"hi"}))),
        ["'notes.txt'", "not a file an integration holds"],
    ),
    Case(
        "hidden-file",
        zipped(lambda: make_zip(good(**{".DS_Store": b"\0\0\0\1Bud1"}))),
        ["'.DS_Store'", "not a file an integration holds"],
    ),
    Case(
        "invalid-json", zipped(lambda: make_zip([("config.json", b"[1, 2")])), ["config.json", "invalid JSON"]
    ),
    Case(
        "invalid-manifest",
        zipped(lambda: make_zip([("config.json", json.dumps(rest_manifest(type="soap")).encode())])),
        ["config.json", "type:", "'rest_api' or 'sql'"],
    ),
    Case("undeclared-param", zipped(sql_manifest_undeclared_param), ["config.json", "@nope is not declared"]),
    Case("svg-script", zipped(lambda: svg_package("<script>alert(1)</script>")), ["icon.svg", "<script>"]),
    Case(
        "svg-onload",
        zipped(lambda: svg_package('<rect width="8" height="8" onload="alert(1)"/>')),
        ["icon.svg", "event-handler attribute"],
    ),
    Case(
        "svg-external-href",
        zipped(lambda: svg_package('<image href="https://evil.example/x.png"/>')),
        ["icon.svg", "external resource"],
    ),
    Case(
        "svg-xlink-href",
        zipped(
            lambda: svg_package(
                '<use xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="http://e.x/a#b"/>'
            )
        ),
        ["icon.svg", "external resource"],
    ),
    Case(
        "svg-css-url",
        zipped(lambda: svg_package("<style>rect{fill:url(http://evil.example/x)}</style>")),
        ["icon.svg", "url()"],
    ),
    Case(
        "png-really-html",
        zipped(lambda: make_zip(good(**{"icon.png": b"<html><script>alert(1)</script></html>"}))),
        ["icon.png", "not a valid PNG image"],
    ),
    Case(
        "forbidden-import",
        zipped(lambda: make_zip([("config.json", MANIFEST), ("connector.py", b"import os\n")])),
        ["connector.py", "import of 'os' is not allowed"],
    ),
    Case(
        "syntax-error",
        zipped(
            lambda: make_zip([("config.json", MANIFEST), ("connector.py", b"def execute(ctx)\n  pass\n")])
        ),
        ["connector.py", "Line 1", "SyntaxError"],
    ),
    Case(
        "existing-slug-without-replace",
        zipped(
            lambda: make_zip(
                [("config.json", json.dumps(rest_manifest(version=3)).encode()), ("connector.py", CONNECTOR)]
            )
        ),
        ["'echo'", "already installed (version 2)", "replace=true"],
        status=409,
        form={"slug": "echo"},
    ),
    Case(
        "replacement-without-higher-version",
        zipped(
            lambda: make_zip(
                [("config.json", json.dumps(rest_manifest(version=2)).encode()), ("connector.py", CONNECTOR)]
            )
        ),
        ["config.json", "version 2 is not higher than the installed version 2"],
        status=409,
        form={"slug": "echo", "replace": "true"},
    ),
    Case("encrypted", zipped(encrypted), ["'config.json'", "encrypted"]),
    Case("archive-comment", zipped(lambda: make_zip(good(), comment=b"hello")), ["archive comment"]),
    Case(
        "entry-comment",
        zipped(lambda: make_zip([(with_comment("config.json"), MANIFEST)])),
        ["'config.json'", "comment"],
    ),
    Case(
        "unicode-path-extra-field",
        zipped(
            lambda: make_zip([(with_extra("config.json", b"\x75\x70\x09\x00\x01\0\0\0\0../x"), MANIFEST)])
        ),
        ["'config.json'", "extra field 0x7075 is not accepted"],
    ),
    Case(
        "malformed-extra-field",
        zipped(lambda: make_zip([(with_extra("config.json", b"\x55\x54\xff\x00\x01"), MANIFEST)])),
        ["not a readable zip archive", "Corrupt extra field 5455"],  # zipfile's own refusal
    ),
    Case(
        "local-header-names-another-file",
        zipped(lambda: rename_local(make_zip(good()), "config.json", "config.jso_")),
        ["'config.json'", "local header disagrees with the central directory"],
    ),
    Case(
        "bytes-before-first-entry",
        zipped(lambda: b"<html>hi</html>" + make_zip(good())),
        ["15 bytes before its first entry"],
    ),
    Case(
        "bzip2-compression",
        zipped(lambda: make_zip([(bzip2("config.json"), MANIFEST)])),
        ["'config.json'", "compression method 12"],
    ),
    Case("not-a-zip", zipped(lambda: b"config.json, but not zipped"), ["not a readable zip archive"]),
    Case("empty-zip", zipped(lambda: make_zip([])), ["the zip is empty"]),
    Case(
        "too-many-entries",
        zipped(lambda: make_zip([(f"f{i}.txt", b"") for i in range(40)])),
        ["40 entries", "at most 32"],
    ),
    Case(
        "invalid-slug",
        zipped(lambda: make_zip(good())),
        ["slug: 'Bad Slug' is not a valid slug"],
        form={"slug": "Bad Slug"},
    ),
    Case("no-slug", zipped(lambda: make_zip(good())), ["slug: not given", "top folder"], form={}),
    Case(
        "file-set-dotdot",
        file_set(("config.json", MANIFEST), ("../connector.py", CONNECTOR)),
        ["file '../connector.py'", "'..'"],
    ),
    Case(
        "file-set-unknown-name",
        file_set(("config.json", MANIFEST), ("run.sh", b"#!/bin/sh\n")),
        ["file 'run.sh'", "not a file an integration holds"],
    ),
]


@pytest.fixture
def installed(integrations_dir: Path) -> Path:
    """An installed ``echo`` (version 2) with a hidden file, so the listing is not trivial."""
    folder = write_integration(integrations_dir, "echo", manifest=rest_manifest(version=2))
    (folder / ".editor-swap").write_bytes(b"x" * 10)
    return integrations_dir


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_package_is_refused_and_nothing_is_written(case: Case, installed: Path, api: Api) -> None:
    before = listing(installed)
    served = (await api.get("/api/integrations/echo")).json()["contentHash"]
    for dry_run in ("false", "true"):
        r: httpx.Response = await api.post(URL, data={**case.form, "dryRun": dry_run}, **case.body())
        assert r.status_code == case.status, r.text
        error = r.json()["error"]
        assert error["code"] == ("conflict" if case.status == 409 else "invalid_package")
        for part in case.expect:
            assert part in error["message"], (part, error["message"])
        assert listing(installed) == before
    assert (await api.get("/api/integrations/echo")).json()["contentHash"] == served
    listed = (await api.get("/api/integrations")).json()["integrations"]
    assert [i["slug"] for i in listed] == ["echo"]
