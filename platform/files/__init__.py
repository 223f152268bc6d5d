"""``ctx.files`` (DESIGN §3): the file store and its handler.

- :mod:`.names`: file names and media types from connectors, made safe for disk and headers;
- :mod:`.store`: :class:`~.store.FileStore`, bytes under ``<data_dir>/files``, metadata in
  the state database, retention;
- :mod:`.handler`: :class:`~.handler.ExecutionFiles`, the sandbox's file handler for one
  execution (caps, downloads through the egress policy).

``GET /api/files/{fileId}`` (``platform/api/files.py``) serves stored files.
"""
