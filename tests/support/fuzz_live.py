"""``make fuzz``'s second half: schemathesis's own runner (``st run``: coverage, fuzzing and
stateful phases, every check) against a real ``bollard serve``, once with an admin and once
with an agent token. Local integrations only (an echo REST integration with no
``allowedHosts``, a SQLite one and a broken folder), so nothing leaves 127.0.0.1.

``python -m tests.support.fuzz_live [EXAMPLES]``; exit status 1 when a run found failures.
``positive_data_acceptance`` is left out: the OAuth2 callback and the upload rightly refuse
requests that fit their documented shape (an unknown ``state``, a form field that is not a
file).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.integrations import rest_manifest, sqlite_manifest, write_integration
from tests.support.standin import BollardServer, bollard

SEED = "CREATE TABLE IF NOT EXISTS t (n INTEGER); INSERT INTO t VALUES (1), (2), (3);"


def integrations(root: Path) -> Path:
    folder = root / "integrations"
    m = rest_manifest()
    m["operations"].append({"name": "cancel", "operationType": "write"})
    write_integration(folder, "echo", manifest=m)
    write_integration(folder, "broken", manifest="[1, 2")
    sql = sqlite_manifest(
        "r.db",
        [
            {"name": "all", "query": "SELECT n FROM t ORDER BY n"},
            {"name": "drop", "operationType": "write", "query": "DELETE FROM t WHERE n = @n"},
        ],
    )
    write_integration(folder, "rows", manifest=sql, connector=None, extra={"seed.sql": SEED})
    return folder


def main(examples: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        env = {"BOLLARD_SECRET_KEY": "fuzz", "BOLLARD_RELOAD": "false"}
        server = BollardServer(integrations(root), data, env)
        failed = 0
        try:
            tokens = {
                "admin": (data / "admin.token").read_text().strip(),
                "agent": bollard(
                    "token", "create", "--role", "agent", "--data-dir", str(data), env=env
                ).strip(),
            }
            for role, token in tokens.items():
                print(f"== st run as {role} ({examples} examples per operation)", flush=True)
                done = subprocess.run(
                    [
                        str(Path(sys.executable).with_name("st")),
                        "run",
                        f"{server.url}/openapi.json",
                        "-H",
                        f"Authorization: Bearer {token}",
                        "--checks",
                        "all",
                        "--exclude-checks",
                        "positive_data_acceptance",
                        "-n",
                        str(examples),
                        "--no-color",
                    ],
                    timeout=3600,
                )
                failed += done.returncode != 0
        finally:
            server.stop()
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
