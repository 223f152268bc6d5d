"""What checking, redacting and encoding a 50-row result envelope costs (result_json.py).

Run with ``.venv/bin/python bench/bench_envelope.py [--n 3000]`` (and with
``PYTHONPATH=<an older tree>`` to compare). Prints the median of ``is_small`` on the
envelope, and of ``redact_envelope`` with one secret plus the bytes the response sends
(its text, else Starlette's ``JSONResponse`` encoding of the body).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from bollard.platform import result_json

ROWS = [
    {
        "id": i,
        "guest": f"guest {i}",
        "room": 100 + i,
        "status": "confirmed",
        "checkIn": "2024-01-01",
        "checkOut": "2024-01-03",
        "total": i * 1.5,
        "paid": i % 2 == 0,
        "notes": None,
    }
    for i in range(50)
]
BODY = {"success": True, "integration": "hotel", "operation": "list_reservations", "version": 1,
        "data": ROWS, "count": 50, "durationMs": 1.2}  # fmt: skip


def response_bytes(body: dict[str, object]) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    n = ap.parse_args().n
    small = []
    for _ in range(n):
        t = time.perf_counter()
        result_json.is_small(BODY)
        small.append(time.perf_counter() - t)
    both = []
    for _ in range(n):
        t = time.perf_counter()
        body, text = await result_json.redact_envelope(BODY, ["sk-live-1234567890"])
        _ = text.encode() if text is not None else response_bytes(body)
        both.append(time.perf_counter() - t)
    print(f"is_small: {statistics.median(small) * 1e6:.1f} µs; redact_envelope (one secret) + the "
          f"response's bytes: {statistics.median(both) * 1e6:.1f} µs (50 rows, n={n})")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
