"""Throughput through the API and the CPU one execution costs, per process kind.

Run with ``.venv/bin/python bench/bench_throughput_cpu.py [--seconds 5] [--workers 1,2]
[--ops nop,hotel]`` (needs ``wrk``). For each ``bollard serve --workers N`` and each
operation, ``wrk -t1 -c16`` POSTs for ``--seconds``; meanwhile the CPU time of the
server processes, of their sandbox workers (live ones and reaped ones, through the
parents' ``cutime``) and of wrk itself is read from /proc. Prints executions/s, the CPU
milliseconds per execution of each kind, and the ceiling the machine's cores put on the
rate: ``cores × 1000 / CPU ms per execution`` (the rate if nothing else ran here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_api import Upstream  # noqa: E402
from bench_table import ENV, WRK_SCRIPT, agent_token, warm_all, write_integrations  # noqa: E402

from tests.support.standin import BollardServer  # noqa: E402

PATHS = {
    "nop": "nop1/operations/nop",
    "one": "bench/operations/one",
    "hotel": "hotel/operations/list_reservations",
}
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float, float]:
    """(comm, ppid, own CPU s, reaped children's CPU s) from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    f = raw.rpartition(")")[2].split()
    return comm, int(f[1]), (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK


def tree_cpu(root: int, workers: int) -> dict[str, float]:
    """CPU seconds so far of ``root`` and its descendants: ``server`` (the serve
    process, or with ``workers`` > 1 the supervisor and its server processes) and
    ``sandbox`` (everything below them: the sandbox workers), reaped children included."""
    procs: dict[int, tuple[str, int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError):  # gone meanwhile
                procs[int(entry)] = _stat(int(entry))
    children: dict[int, list[int]] = {}
    for pid, (_c, ppid, _o, _r) in procs.items():
        children.setdefault(ppid, []).append(pid)
    servers = {root}
    if workers > 1:  # the supervisor's children are the server processes
        servers |= set(children.get(root, []))
    out = {"server": 0.0, "sandbox": 0.0}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid not in procs:
            continue
        _comm, _ppid, own, reaped = procs[pid]
        if pid in servers:
            out["server"] += own
            out["sandbox"] += reaped  # a server's reaped children are its sandbox workers
        else:
            out["sandbox"] += own + reaped
        stack.extend(children.get(pid, []))
    return out


def run_wrk(url: str, token: str, seconds: int, tmp: Path) -> tuple[float, int, float]:
    """(requests/s, non-2xx, wrk's CPU seconds)."""
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT.replace("TOKEN", token))
    proc = subprocess.Popen(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), url], stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(bad.group(1)) if bad else 0, usage.ru_utime + usage.ru_stime


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--ops", default="nop,hotel")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"bench_throughput_cpu: {cores} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print("| workers | operation | executions/s | CPU ms/execution: server / sandbox / wrk / total ", end="")
    print("| ceiling |")
    print("|---|---|---|---|---|")
    with Upstream() as standin, tempfile.TemporaryDirectory() as tmp_name:
        root = Path(tmp_name)
        write_integrations(root, standin.url)
        for workers in [int(w) for w in args.workers.split(",")]:
            data = root / f"srv-w{workers}"
            token = agent_token(data)
            srv = BollardServer(root / "integrations", data, ENV, workers=workers)
            try:
                await warm_all(srv, token)
                for op in args.ops.split(","):
                    before = tree_cpu(srv.proc.pid, workers)
                    url = f"{srv.url}/api/integrations/{PATHS[op]}"
                    rate, bad, wrk_cpu = run_wrk(url, token, args.seconds, root)
                    after = tree_cpu(srv.proc.pid, workers)
                    n = rate * args.seconds
                    server = (after["server"] - before["server"]) / n * 1000
                    sandbox = (after["sandbox"] - before["sandbox"]) / n * 1000
                    client = wrk_cpu / n * 1000
                    total = server + sandbox + client
                    note = f", {bad} non-2xx" if bad else ""
                    print(
                        f"| {workers} | {op} | {rate:,.0f}{note} | {server:.3f} / {sandbox:.3f} / "
                        f"{client:.3f} / {total:.3f} | {cores * 1000 / total:,.0f}/s |"
                    )
            finally:
                srv.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    asyncio.run(main())
