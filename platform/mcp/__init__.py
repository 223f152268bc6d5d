"""Bollard as an MCP server (DESIGN §9), on the official ``mcp`` SDK 2.x.

``server.py`` builds the low-level ``Server``; ``tools.py`` (every operation a tool),
``results.py`` (structured content sized for models), ``approvals.py`` (held writes an
agent can wait on), ``tasks.py`` (the Tasks extension), ``resources.py`` (integrations and
approvals), ``auth.py`` (Bollard's bearer tokens), ``host.py`` (what the handlers share)
and ``transport.py`` (``/mcp`` in ``bollard serve``, stdio for ``bollard mcp``).
"""
