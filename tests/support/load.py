"""Mixed load with faults against real ``bollard serve`` replicas (DESIGN §12; issue 14).

Used by ``bench/bench_load.py`` (10 000 calls, timings) and
``tests/platform/test_load_faults.py`` (a few hundred, statuses and records only).

- :func:`start_upstreams`: raw asyncio TCP upstreams on 127.0.0.1 in a thread of their
  own: ``slow`` (answers after 30 s) and ``bomb`` (``Content-Encoding: gzip, gzip``, 128 MiB
  of zeros inside);
- :func:`write_integrations`: ``healthy`` (REST through the sandbox: ``echo`` and the
  approval-free write ``record``), ``pgread`` (SQL on PostgreSQL), ``literead`` (SQL on
  SQLite) and ``faulty`` (REST: an endless loop, a memory bomb, deep recursion, an
  exception, a 5 MiB result, the slow and the bomb upstream);
- :data:`HEALTHY` and :data:`FAULTS`: each call with the status and error code it must
  get; :func:`run_load` sends a mix at a given concurrency, round-robin over replicas.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.integrations import no_params_op
from tests.support.standin import raw_servers

FAULTY_CONNECTOR = """
def execute(ctx):
    op = ctx.operation
    if op == "loop":
        while True:
            pass
    if op == "memory":
        chunks = []
        while True:
            chunks.append("x" * 1000000)
    if op == "recursion":
        return dive(0)
    if op == "raises":
        raise ValueError("the connector gave up")
    if op == "big":
        return "x" * (5 * 1024 * 1024)
    if op == "slow":
        return ctx.http.get(SLOW + "/").status
    if op == "bomb":
        return len(ctx.http.get(BOMB + "/").text)
    return None


def dive(n):
    return dive(n + 1)
"""

HEALTHY_CONNECTOR = """
def execute(ctx):
    return {"operation": ctx.operation, "params": ctx.params}
"""


@dataclass(frozen=True)
class Case:
    """One kind of call and what it must be answered with."""

    name: str
    slug: str
    operation: str
    status: int
    code: str | None = None  # the error code, None for a success
    params: dict[str, Any] = field(default_factory=dict)
    write: bool = False


HEALTHY = [
    Case("REST read", "healthy", "echo", 200, params={"text": "hi"}),
    Case("REST write", "healthy", "record", 200, write=True),
    Case("SQL PostgreSQL", "pgread", "numbers", 200, params={"n": 20}),
    Case("SQL SQLite", "literead", "numbers", 200, params={"n": 20}),
]
FAULTS = [
    Case("endless loop", "faulty", "loop", 422, "limit_exceeded"),
    Case("memory bomb", "faulty", "memory", 422, "limit_exceeded"),
    Case("deep recursion", "faulty", "recursion", 502, "connector_error"),
    Case("exception", "faulty", "raises", 502, "connector_error"),
    Case("5 MiB result", "faulty", "big", 200),
    Case("slow upstream", "faulty", "slow", 504, "timeout"),
    Case("gzip bomb upstream", "faulty", "bomb", 422, "limit_exceeded"),
]


async def _slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(30)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()


def _bomb_handler(body: bytes) -> Any:
    async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip, gzip\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return bomb


def start_upstreams() -> dict[str, int]:
    """Start the ``slow`` and ``bomb`` upstreams (daemon thread); their ports."""
    body = gzip.compress(gzip.compress(bytes(128 * 1024 * 1024), compresslevel=9), compresslevel=9)
    return raw_servers({"slow": _slow, "bomb": _bomb_handler(body)})


def write_integrations(root: Path, ports: dict[str, int]) -> None:
    """The four integrations of the module docstring under ``root``."""

    def folder(slug: str, manifest: dict[str, Any], files: dict[str, str]) -> None:
        (root / slug).mkdir(parents=True, exist_ok=True)
        (root / slug / "config.json").write_text(json.dumps({"version": 1, **manifest}, indent=1))
        for name, text in files.items():
            (root / slug / name).write_text(text)

    tag = {"type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]}
    folder(
        "healthy",
        {
            "title": "Healthy",
            "type": "rest_api",
            "authMethod": "none",
            "operations": [
                {
                    "name": "echo",
                    "parametersSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
                },
                {
                    "name": "record",
                    "operationType": "write",
                    "requiresApproval": False,
                    "parametersSchema": tag,
                },
            ],
        },
        {"connector.py": HEALTHY_CONNECTOR},
    )
    consts = "".join(f'{k.upper()} = "http://127.0.0.1:{p}"\n' for k, p in ports.items())
    tight = {"cpuTimeMs": 300, "memoryMb": 128}
    folder(
        "faulty",
        {
            "title": "Faulty",
            "type": "rest_api",
            "authMethod": "none",
            "allowedHosts": [f"http://127.0.0.1:{p}" for p in ports.values()],
            "operations": [
                no_params_op("loop", limits=tight),
                no_params_op("memory", limits=tight),
                no_params_op("recursion", limits=tight),
                no_params_op("raises"),
                no_params_op("big", limits={"maxResultBytes": 8 * 1024 * 1024}),
                no_params_op("slow", timeoutMs=1000),
                no_params_op("bomb", timeoutMs=10000),
            ],
        },
        {"connector.py": consts + FAULTY_CONNECTOR},
    )
    numbers = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 1000}},
        "required": ["n"],
    }
    folder(
        "pgread",
        {
            "title": "PostgreSQL reads",
            "type": "sql",
            "authMethod": "basic_auth",
            "secretBindings": ["username"],
            "sqlConnectionConfig": {"engine": "postgres"},
            "sqlOperations": [
                {
                    "name": "numbers",
                    "query": "SELECT g AS n FROM generate_series(1, @n) AS g",
                    "parametersSchema": numbers,
                }
            ],
        },
        {},
    )
    folder(
        "literead",
        {
            "title": "SQLite reads",
            "type": "sql",
            "authMethod": "none",
            "sqlConnectionConfig": {
                "engine": "sqlite",
                "options": {"database": "numbers.db", "seedFile": "seed.sql"},
            },
            "sqlOperations": [
                {
                    "name": "numbers",
                    "query": "SELECT n FROM numbers WHERE n <= @n ORDER BY n",
                    "parametersSchema": numbers,
                }
            ],
        },
        {
            "seed.sql": "CREATE TABLE numbers (n INTEGER PRIMARY KEY);\n"
            + "".join(f"INSERT INTO numbers VALUES ({i});\n" for i in range(1, 1001))
        },
    )


@dataclass
class Result:
    case: Case
    status: int | str  # the HTTP status, or the transport error's class name
    code: str | None
    seconds: float
    tag: str | None = None

    @property
    def right(self) -> bool:
        return self.status == self.case.status and self.code == self.case.code


def plan(n: int, fault_share: float, seed: int = 14, faults_from: list[Case] | None = None) -> list[Case]:
    """``n`` calls: ``fault_share`` of them faults (spread over ``faults_from``, default
    :data:`FAULTS`), the rest the healthy mix, shuffled with a fixed seed."""
    rng = random.Random(seed)
    kinds = faults_from or FAULTS
    faults = round(n * fault_share)
    cases = [kinds[i % len(kinds)] for i in range(faults)]
    cases += [HEALTHY[i % len(HEALTHY)] for i in range(n - faults)]
    rng.shuffle(cases)
    return cases


async def run_load(
    urls: list[str], token: str, cases: list[Case], concurrency: int, *, timeout_s: float = 120
) -> list[Result]:
    """Send ``cases`` with ``concurrency`` callers, alternating over ``urls``."""
    results: list[Result] = []
    queue = list(reversed(list(enumerate(cases))))
    # One connection per call: on a saturated machine this client may read a response
    # seconds after uvicorn sent it and started its 5 s keep-alive clock, and a request
    # sent on a connection the server is closing at that moment fails in transport; that
    # would be this client's race, not an answer of the server's.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, limits=limits
    ) as client:

        async def caller() -> None:
            while queue:
                i, case = queue.pop()
                params = dict(case.params)
                tag = None
                if case.write:
                    tag = params["tag"] = uuid.uuid4().hex
                url = f"{urls[i % len(urls)]}/api/integrations/{case.slug}/operations/{case.operation}"
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json={"params": params})
                    status: int | str = r.status_code
                    code = None if r.status_code == 200 else (r.json().get("error") or {}).get("code")
                except httpx.HTTPError as e:
                    status, code = type(e).__name__, None
                results.append(Result(case, status, code, time.perf_counter() - t0, tag))

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return results


async def recorded_tags(url: str, token: str, operation: str = "record") -> set[str]:
    """The ``tag`` parameters of every execution record of ``operation`` (all pages)."""
    tags: set[str] = set()
    offset = 0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        while True:
            r = await c.get(
                f"{url}/api/executions", params={"operation": operation, "limit": 500, "offset": offset}
            )
            r.raise_for_status()
            items = r.json()["executions"]
            if not items:
                return tags
            tags.update(
                i["params"]["tag"]
                for i in items
                if isinstance(i.get("params"), dict) and "tag" in i["params"]
            )
            offset += len(items)


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` (KiB, from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
