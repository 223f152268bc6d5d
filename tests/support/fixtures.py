"""The pytest plugin of shared stand-in fixtures (loaded by ``tests/conftest.py``).

``server`` and ``egress`` are module-scoped: one echo server and one forwarding
``http_handler`` per test module. A module's own fixture of the same name takes precedence
(the egress tests define their own ``server``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.support.standin import Egress, LocalServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def egress(server: LocalServer) -> AsyncIterator[Egress]:
    e = Egress(server)
    yield e
    await e.close()
