"""Invoke an operation over the HTTP API and follow an approval to its result.

Run the server first (``make run``), then:

    python examples/invoke_over_http.py                       # lists the hotel's confirmed reservations
    python examples/invoke_over_http.py --cancel 8            # requests a cancellation and waits for approval

The token defaults to the admin token ``make run`` saved in ``.bollard/admin.token``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx


def main() -> None:
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
            return
        r = client.post(
            "/api/integrations/hotel/operations/cancel_reservation", json={"params": {"id": args.cancel}}
        )
        pending = r.json()
        if r.status_code != 202:  # an error (or, if the manifest stopped requiring approval, the result)
            print(json.dumps(pending, indent=2))
            return
        # 202: nothing ran; the body carries the approval (what will run) and its id
        print(f"HTTP 202: approval {pending['approvalId']} is {pending['status']}")
        print(json.dumps(pending["approval"]["summary"], indent=2))
        print(pending["message"])
        print(
            "approve it with: curl -X POST -H 'Authorization: Bearer …' "
            f"{args.url}/api/approvals/{pending['approvalId']}/approve"
        )
        while True:
            approval = client.get(f"/api/approvals/{pending['approvalId']}").json()
            if approval["status"] not in ("pending", "approved", "executing"):
                print(json.dumps(approval, indent=2))
                return
            time.sleep(2)


if __name__ == "__main__":
    main()
