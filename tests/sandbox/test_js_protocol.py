"""``sandbox/frames.py`` and ``sandbox/protocol.py`` stay the single definition of the
frames and messages: the JS worker's copies of their constants must match them (DESIGN §1:
"the JS worker implements the same")."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bollard.sandbox import errors, frames, protocol, worker
from bollard.sandbox.js import WORKER_SCRIPT

SOURCE = Path(WORKER_SCRIPT).read_text()


def js_constant(name: str) -> object:
    match = re.search(rf"^const {name} = (.+?);(\s*//.*)?$", SOURCE, re.M)
    assert match, f"worker.js has no const {name}"
    text = match.group(1)
    if re.fullmatch(r"[0-9 *_]+", text):
        return eval(text.replace("_", ""), {"__builtins__": {}})  # digits and * only
    return json.loads(text.replace("'", '"'))


def test_js_worker_constants_match_protocol_py() -> None:
    assert js_constant("HEADER_BYTES") == frames.HEADER.size
    assert js_constant("MAX_HOST_MESSAGE_BYTES") == worker.MAX_HOST_MESSAGE_BYTES
    assert js_constant("MAX_MESSAGE_CHARS") == errors.MAX_MESSAGE_CHARS
    for name in (
        "MAX_URL_CHARS",
        "MAX_HEADERS",
        "MAX_HEADER_CHARS",
        "MAX_REQUEST_BODY_BYTES",
        "MAX_LOG_LINES",
    ):
        assert js_constant(name) == getattr(protocol, name), name
    assert js_constant("MAX_FORM_FIELDS") == protocol.MAX_FORM_FIELDS
    assert tuple(js_constant("HTTP_METHODS")) == protocol.HTTP_METHODS  # type: ignore[arg-type]


def test_js_worker_sends_only_known_messages_and_error_kinds() -> None:
    sent = set(re.findall(r'type: "([a-z_]+)"', SOURCE))
    assert sent <= {"ready", "loaded", "http", "file_store", "file_download", "result", "error"}, sent
    kinds = set(re.findall(r'kind: "([a-z_]+)"', SOURCE))
    assert kinds <= protocol.ERROR_KINDS, kinds - protocol.ERROR_KINDS
    # every field the host's parser of an http message reads is sent
    for field in ("method", "url", "headers", "params", "body", "binary_body", "response_type"):
        assert re.search(rf"\b{field}[:,]", SOURCE), field
