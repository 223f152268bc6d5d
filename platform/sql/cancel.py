"""Cancelling a timed-out MariaDB/MySQL query on the server (DESIGN §5; hardening issue
item 14).

Closing the client's socket does not stop a query that never writes to it (a CPU-bound
``BENCHMARK``, a long sort): it runs on to its end. When a call's client deadline
passes, ``kill_mysql_query`` sends ``KILL QUERY <thread id>`` from a new connection (a
user may kill its own threads) and waits until the thread runs no query, so the pool
slot is free only once its backend is idle.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["CANCEL_WAIT_S", "kill_mysql_query", "mysql_thread_id"]

logger = logging.getLogger("bollard.sql")

CANCEL_WAIT_S = 5.0  # how long (s) to wait for a killed query to stop
_POLL_S = 0.05


def mysql_thread_id(driver_connection: Any) -> int | None:
    """The server thread id of an aiomysql connection (from its handshake), or None."""
    tid = getattr(driver_connection, "server_thread_id", None)
    if isinstance(tid, tuple) and tid:
        tid = tid[0]
    return tid if isinstance(tid, int) and not isinstance(tid, bool) else None


async def kill_mysql_query(connect: dict[str, Any], thread_id: int) -> None:
    """``KILL QUERY thread_id`` from a new connection made with ``connect``
    (``aiomysql.connect`` keyword arguments), then wait up to ``CANCEL_WAIT_S`` until
    that thread runs no query. Best effort: failures are logged, never raised."""
    import aiomysql

    try:
        async with asyncio.timeout(2 * CANCEL_WAIT_S):
            con = await aiomysql.connect(**connect)
            try:
                async with con.cursor() as cur:
                    await cur.execute(f"KILL QUERY {int(thread_id)}")
                    loop = asyncio.get_running_loop()
                    until = loop.time() + CANCEL_WAIT_S
                    while loop.time() < until:
                        await cur.execute(
                            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                            "WHERE ID = %s AND COMMAND = 'Query'",
                            (int(thread_id),),
                        )
                        row = await cur.fetchone()
                        if not row or not row[0]:
                            return
                        await asyncio.sleep(_POLL_S)
            finally:
                con.close()
    except Exception as exc:  # noqa: BLE001 - best effort; the connection is discarded anyway
        logger.warning("could not kill the timed-out query of thread %s: %s", thread_id, type(exc).__name__)
