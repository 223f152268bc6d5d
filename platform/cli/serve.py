"""``bollard serve``: the HTTP API over an integrations directory (DESIGN §8, §11)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from bollard.platform.cli.common import add_data_dir, settings_from
from bollard.platform.request_id import install_log_filter, uvicorn_log_config

DESCRIPTION = """\
Run the Bollard HTTP API: the catalog, operations, credentials, approvals, the
execution log and Test connection under /api (bearer tokens), liveness at /healthz,
Swagger UI at /docs and the OpenAPI document at /openapi.json. Integrations are loaded
from the integrations directory (default: BOLLARD_INTEGRATIONS_DIR or ./integrations,
which in a checkout of the repository holds the shipped integrations) and reloaded when
their files change. State (tokens, credentials, approvals, executions) is kept in the
data directory. On the first start an admin token is created, printed (that once only)
and saved to <data-dir>/admin.token. Stop with Ctrl-C.
"""


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, telling the runtime when shutdown begins: uvicorn then waits for
        open responses, and an endless one (the web page's event stream) must end first."""

        def __init__(self, config: uvicorn.Config, runtime: Any) -> None:
            super().__init__(config)
            self.runtime = runtime

        async def shutdown(self, sockets: Any = None) -> None:
            self.runtime.closing.set()
            await super().shutdown(sockets)

    return Server


def cmd_serve(args: argparse.Namespace) -> int:
    """``--workers N`` > 1: the supervisor (serve_workers.py) starts N server processes;
    otherwise (and in each of those processes) start the runtime, probe the sandbox,
    print where it serves, run uvicorn; exit 0 on Ctrl-C or SIGTERM."""
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    settings = settings_from(args).model_copy(update=overrides)
    child_of: int | None = getattr(args, "worker_of", None)
    workers = args.workers if args.workers is not None else default_workers(settings)
    if workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if child_of is None and workers > 1:
        from bollard.platform.cli.serve_workers import run_supervisor

        argv = ["serve", "--host", settings.host, "--port", str(settings.port)]
        argv += ["--integrations", str(settings.integrations_dir.resolve())]
        argv += ["--data-dir", str(settings.data_dir.resolve())]
        return run_supervisor(settings, argv, workers)
    return _serve_one(settings, child_of)


def default_workers(settings: Any) -> int:
    """``serve``'s process count when neither ``--workers`` nor ``BOLLARD_WORKERS`` is
    given: the number of cores with a PostgreSQL state database, where the processes share
    rate limits, concurrency caps and events as replicas do (DESIGN §12); one with SQLite,
    where those would be per process (a limit of L/min admitting N×L, an upload seen by the
    other processes only after their watchers reload it)."""
    if settings.resolved_database_url().startswith("postgresql"):
        return os.cpu_count() or 1
    return 1


def _serve_one(settings: Any, child_of: int | None) -> int:
    """One server process: the whole server, or (``child_of``: the supervisor's pid)
    one of ``--workers N``, on its own ``SO_REUSEPORT`` socket, whose supervisor did the
    migrations and the first admin token."""
    # lazy: keeps CLI start-up fast
    import uvicorn

    from bollard.platform.api.app import create_app
    from bollard.platform.runtime import ADMIN_TOKEN_FILE, Runtime

    sockets = None
    if child_of is not None:
        from bollard.platform.cli.serve_workers import die_with_parent, listening_socket

        die_with_parent(child_of)
        sockets = [listening_socket(settings.host, settings.port)]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
    )
    install_log_filter()  # each line names its request's X-Request-Id ("-" outside requests)
    runtime = Runtime(settings)

    async def main() -> None:
        await runtime.start(migrate=child_of is None)
        try:  # start one worker now so /healthz reports the isolation layers in force
            layers = await runtime.pool.probe()
            if child_of is None:
                print(
                    "  Sandbox layers: " + ", ".join(k for k, v in layers.items() if v and k != "probed"),
                    flush=True,
                )
        except Exception as e:
            print(
                f"  Warning: the sandbox could not start a worker ({e}); REST operations will fail",
                flush=True,
            )
        runtime.warmer.start()  # a warm worker per integration and credential (warmup.py)
        url = f"http://{settings.host}:{settings.port}"
        if child_of is None:
            created = await runtime.ensure_admin_token()
            token_file = settings.data_dir / ADMIN_TOKEN_FILE
            print(f"Bollard is serving {settings.integrations_dir.resolve()} at {url}", flush=True)
            print(f"  Web page: {url}/ (log in with the admin token)", flush=True)
            print(f"  API docs: {url}/docs", flush=True)
            if created:
                print(f"  Admin token (created now, saved to {token_file}): {created}", flush=True)
            elif token_file.exists():  # printed once, when created: logs keep what scrolls by
                print(f"  Admin token: in {token_file} (created on the first start)", flush=True)
        else:
            print(f"  server process {os.getpid()} serving {url}", flush=True)
        config = uvicorn.Config(
            create_app(runtime=runtime),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=settings.access_log,  # the execution log records every call
            log_config=uvicorn_log_config(),  # access lines end with the X-Request-Id
        )
        await _server_class()(config, runtime).serve(sockets=sockets)

    # uvloop (from uvicorn[standard]) when installed: uvicorn's own loop set-up is bypassed
    # because the runtime starts first, so the loop is chosen here (+20% measured on one GET).
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):  # uvicorn[standard] brings it
        import uvloop  # lazy: only serve needs it

        loop_factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP API (Swagger UI at /docs) over the integrations directory",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host",
        default=os.environ.get("BOLLARD_HOST", "127.0.0.1"),
        help="address to listen on (default: BOLLARD_HOST or 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("BOLLARD_PORT", "8000")),
        help="port to listen on (default: BOLLARD_PORT or 8000)",
    )
    p.add_argument(
        "--integrations",
        metavar="DIR",
        help="integrations directory (default: BOLLARD_INTEGRATIONS_DIR or ./integrations, "
        "the shipped integrations when run from the repository)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ["BOLLARD_WORKERS"]) if os.environ.get("BOLLARD_WORKERS") else None,
        metavar="N",
        help="server processes on the one port, each with its own sandbox pool, sharing state "
        "through the database (default: BOLLARD_WORKERS, else the number of cores with a "
        "PostgreSQL state database and 1 with SQLite)",
    )
    # one of the --workers N processes; the supervisor's pid (serve_workers.py)
    p.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)
    add_data_dir(p)
    p.set_defaults(func=cmd_serve)
