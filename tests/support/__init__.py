"""Shared test helpers: import them from here, never from a ``conftest.py``.

- :mod:`tests.support.paths`: the repository, the Tale corpus, the shipped integrations.
- :mod:`tests.support.api`: an ASGI client for the app (:class:`~tests.support.api.Api`,
  :func:`~tests.support.api.app_client`) and :func:`~tests.support.api.local_settings`.
- :mod:`tests.support.integrations`: builders for integration folders.
- :mod:`tests.support.databases`: the real PostgreSQL, MariaDB and SQL Server the tests use.
- :mod:`tests.support.standin`: real HTTP(S) servers on 127.0.0.1 (stand-in upstreams and
  ``bollard serve`` processes), test certificates.
- :mod:`tests.support.oauth2_provider`: an OAuth2 authorisation server (authlib) to log in to.
- :mod:`tests.support.fixtures`: the pytest plugin with the shared stand-in fixtures.
- :mod:`tests.support.pool_runs`: one connector run through a real sandbox pool.
- :mod:`tests.support.sandbox_os`: the OS-layer probe and the run as ``nobody``.
"""
