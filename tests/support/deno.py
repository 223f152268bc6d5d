"""Deno for the JS/TS runtime tests: they run wherever the ``deno`` wheel's binary runs,
skip with the reason elsewhere, and fail instead when ``BOLLARD_REQUIRE_DENO=1`` (CI)."""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

from bollard.sandbox.js import deno_binary


@functools.cache
def deno_unavailable() -> str | None:
    """Why Deno cannot run here, or ``None``."""
    deno = deno_binary()
    if deno is None:
        return "Deno is not installed (pip install deno, or set BOLLARD_DENO)"
    try:
        out = subprocess.run([deno, "--version"], capture_output=True, timeout=60, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Deno at {deno} does not run: {exc}"
    if out.returncode != 0:
        return f"Deno at {deno} does not run (exit status {out.returncode})"
    return None


def require_deno() -> None:
    """Skip the current test when Deno cannot run, or fail it when BOLLARD_REQUIRE_DENO=1."""
    reason = deno_unavailable()
    if reason is None:
        return
    if os.environ.get("BOLLARD_REQUIRE_DENO") == "1":
        pytest.fail(f"{reason} (BOLLARD_REQUIRE_DENO=1)")
    pytest.skip(reason)
