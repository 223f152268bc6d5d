"""Invoke an operation over the HTTP API and follow an approval to its result.

Run the server first (``make run``), then, from the repository root in another terminal:

    .venv/bin/python examples/invoke_over_http.py             # lists the hotel's confirmed reservations
    .venv/bin/python examples/invoke_over_http.py --cancel 8  # requests a cancellation and waits for approval

The token defaults to the admin token ``make run`` saved in ``.bollard/admin.token``
(``--token`` for another one, ``--url`` for another server). Exit status 0 when the call
succeeded (for ``--cancel``: once the approval was decided and ran), 1 otherwise, with the
error envelope printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=None)
    parser.add_argument("--cancel", type=int, default=None, help="reservation id to cancel (needs approval)")
    args = parser.parse_args()
    token = args.token or Path(".bollard/admin.token").read_text().strip()
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        if args.cancel is None:
            r = client.post(
                "/api/integrations/hotel/operations/list_reservations",
                json={"params": {"status": "confirmed"}},
            )
            print(json.dumps(r.json(), indent=2))
            return 0 if r.is_success else 1
        r = client.post(
            "/api/integrations/hotel/operations/cancel_reservation", json={"params": {"id": args.cancel}}
        )
        pending = r.json()
        if r.status_code != 202:  # refused before any approval was requested
            print(json.dumps(pending, indent=2))
            return 1
        # 202: nothing ran; the body carries the approval (what will run) and its id
        print(f"HTTP 202: approval {pending['approvalId']} is {pending['status']}", flush=True)
        print(json.dumps(pending["approval"]["summary"], indent=2))
        print(pending["message"], flush=True)
        print(
            "approve it with: curl -X POST -H 'Authorization: Bearer …' "
            f"{args.url}/api/approvals/{pending['approvalId']}/approve",
            flush=True,
        )
        while True:
            approval = client.get(f"/api/approvals/{pending['approvalId']}").json()
            if approval["status"] not in ("pending", "approved", "executing"):
                print(json.dumps(approval, indent=2))
                return 0 if approval["status"] == "succeeded" else 1
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
