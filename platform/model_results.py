"""Results sized for models: a structure-aware cap that keeps the JSON valid (DESIGN §9).

A result handed to a model (tool results, MCP, the client's ``for_model()``) is at most
``max_chars`` characters of compact JSON (:func:`model_json`; default 20 000, a call may
ask for less, the operator's ``BOLLARD_MAX_MODEL_RESULT_CHARS`` is the ceiling:
:func:`resolve_cap`). A result that fits is returned unchanged. One that does not is cut
where it is big, never mid-token:

- long strings keep their start, the rest replaced by ``"… [N more characters]"``;
- long arrays keep their first items and end in ``"… N more items not shown"``;
- objects with many keys keep their first ones and a ``"…"`` key saying how many went;
- containers nested too deep become ``"[… N items]"`` / ``"{… N keys}"``;

the least cutting that fits is chosen (fewer items and shorter strings step by step). An
object result (the envelope) keeps its top-level keys and gains ``"truncated": true`` and
``"truncation": {"maxChars", "originalChars", "droppedItems", "droppedKeys",
"shortenedStrings"}``; any other value is wrapped as ``{"truncated": true, "value": …,
"truncation": …}``. The output always parses and is never longer than the cap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_CHARS = 20_000
MIN_MAX_CHARS = 200  # below this not even the truncation note fits
TOP_LEVEL_KEYS = 16  # an object result keeps at least this many of its own keys
MARKER_CHARS = 32  # a string is only cut when that saves more than its marker costs


def model_json(value: Any) -> str:
    """``value`` as the compact JSON text the cap counts (characters, not bytes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)


def resolve_cap(requested: int | None, ceiling: int = DEFAULT_MAX_CHARS) -> int:
    """The cap for one call: ``requested`` (characters) lowered to the operator ``ceiling``;
    ``None`` means the ceiling. Never below :data:`MIN_MAX_CHARS`."""
    cap = ceiling if requested is None else min(requested, ceiling)
    return max(MIN_MAX_CHARS, cap)


@dataclass(frozen=True)
class _Level:
    items: int  # array items / object keys kept per container
    chars: int  # characters kept per string
    depth: int  # containers deeper than this become a marker


LEVELS = [
    _Level(1000, 4000, 32),
    _Level(200, 2000, 24),
    _Level(100, 1000, 16),
    _Level(50, 500, 12),
    _Level(20, 200, 10),
    _Level(10, 100, 8),
    _Level(5, 50, 6),
    _Level(3, 30, 4),
    _Level(1, 20, 3),
    _Level(0, 10, 2),
    _Level(0, 0, 1),
]


@dataclass
class _Shrink:
    level: _Level
    dropped_items: int = 0
    dropped_keys: int = 0
    shortened: int = 0

    def text(self, s: str) -> str:
        keep = self.level.chars
        if len(s) <= keep + MARKER_CHARS:
            return s
        self.shortened += 1
        return f"{s[:keep]}… [{len(s) - keep} more characters]"

    def value(self, v: Any, depth: int) -> Any:
        if v is None or isinstance(v, bool | int):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return self.mapping(v, depth)
        if isinstance(v, list | tuple):
            return self.sequence(list(v), depth)
        return self.text(str(v))

    def sequence(self, items: list[Any], depth: int) -> Any:
        if depth > self.level.depth:
            self.dropped_items += len(items)
            return f"[… {len(items)} items]"
        keep = items[: self.level.items]
        out = [self.value(i, depth + 1) for i in keep]
        if len(items) > len(keep):
            self.dropped_items += len(items) - len(keep)
            out.append(f"… {len(items) - len(keep)} more items not shown")
        return out

    def mapping(self, d: dict[Any, Any], depth: int, keep: int | None = None) -> Any:
        if depth > self.level.depth:
            self.dropped_keys += len(d)
            return f"{{… {len(d)} keys}}"
        limit = self.level.items if keep is None else keep
        out: dict[str, Any] = {}
        for k, v in d.items():
            if len(out) >= limit:
                break
            key = self.text(str(k))
            if key not in out:  # two long keys cut to the same text: the first is kept
                out[key] = self.value(v, depth + 1)
        if len(d) > len(out):
            self.dropped_keys += len(d) - len(out)
            out["…"] = f"{len(d) - len(out)} more keys not shown"
        return out


def _attempt(value: Any, level: _Level, cap: int, original: int) -> tuple[Any, int]:
    shrink = _Shrink(level)
    if isinstance(value, dict):
        body = shrink.mapping(value, 0, keep=max(level.items, TOP_LEVEL_KEYS))
        body.pop("truncated", None)
        body.pop("truncation", None)
    else:
        body = {"value": shrink.value(value, 1)}
    body["truncated"] = True
    body["truncation"] = {
        "maxChars": cap,
        "originalChars": original,
        "droppedItems": shrink.dropped_items,
        "droppedKeys": shrink.dropped_keys,
        "shortenedStrings": shrink.shortened,
    }
    return body, len(model_json(body))


def _refine(value: Any, fitting: _Level, looser: _Level, cap: int, original: int) -> Any:
    """The most items per container between ``fitting`` and ``looser`` that still fits."""
    best, _ = _attempt(value, fitting, cap, original)
    lo, hi = fitting.items, looser.items
    while hi - lo > 1:
        mid = (lo + hi) // 2
        out, size = _attempt(value, _Level(mid, fitting.chars, fitting.depth), cap, original)
        if size <= cap:
            best, lo = out, mid
        else:
            hi = mid
    return best


def cap_for_model(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """``value`` (any JSON value) cut to at most ``max_chars`` characters of :func:`model_json`
    (module docstring). ``max_chars`` below :data:`MIN_MAX_CHARS` is raised to it."""
    cap = max(MIN_MAX_CHARS, max_chars)
    try:
        original = len(model_json(value))
    except (ValueError, RecursionError):  # NaN, infinity or absurd nesting: cleaned below
        original = cap + 1
    if original <= cap:
        return value
    previous = None
    for level in LEVELS:
        out, size = _attempt(value, level, cap, original)
        if size <= cap:
            return out if previous is None else _refine(value, level, previous, cap, original)
        previous = level
    return {
        "truncated": True,
        "truncation": {"maxChars": cap, "originalChars": original},
        "note": "the result is too large to show in part; ask for less (filters, a smaller page)",
    }


def model_text(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """:func:`cap_for_model` as JSON text, at most ``max_chars`` characters."""
    return model_json(cap_for_model(value, max_chars))
