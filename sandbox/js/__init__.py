"""The TypeScript/JavaScript runtime (DESIGN §3, §4): Tale's ``connector.ts`` /
``connector.js`` run in Deno worker processes under the same OS layers as the Python
workers.

- :mod:`.launcher`: the worker's first program, Python: it applies the layers
  (:func:`bollard.sandbox.isolation.isolate` with :func:`.profile.js_profile`)
  and then ``execve``\\ s Deno with every permission denied;
- ``worker.js``: the Deno side, the frames and messages of :mod:`bollard.sandbox.frames`
  and :mod:`bollard.sandbox.protocol`, Tale's sandbox globals and ``ctx``;
- :mod:`.profile`: what the OS layers allow the Deno worker (syscalls, Landlock paths);
- :mod:`.source`: load-time checks of the source (syntax with the line, ``import`` and
  ``require`` refused, the entry points and Tale's ``operations`` array), with
  tree-sitter's TypeScript grammar.

Deno comes from the ``deno`` package on PyPI (its wheel ships the binary).
"""

from __future__ import annotations

import os
from pathlib import Path

WORKER_SCRIPT = str(Path(__file__).parent / "worker.js")
JS_SUFFIXES = (".ts", ".js")


def is_js_connector(filename: str) -> bool:
    """Whether ``filename`` (``connector.ts``, ``connector.js``) runs in the Deno runtime."""
    return filename.endswith(JS_SUFFIXES)


def deno_binary() -> str | None:
    """The Deno executable: ``BOLLARD_DENO`` when set (an operator's own build), else the
    one the ``deno`` PyPI package installed; ``None`` when there is none."""
    configured = os.environ.get("BOLLARD_DENO")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    try:
        from deno import find_deno_bin  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        path = str(find_deno_bin())
    except FileNotFoundError:
        return None
    return os.path.realpath(path) if os.access(path, os.X_OK) else None
