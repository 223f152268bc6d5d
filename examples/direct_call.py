"""Call Bollard from Python with its client: list, read, write, wait for the approval.

Run the server first (``make run``), then, from the repository root in another terminal:

    .venv/bin/python examples/direct_call.py             # tools and the hotel's confirmed reservations
    .venv/bin/python examples/direct_call.py --cancel 8  # cancels reservation 8 once a person approves it

The token defaults to the admin token ``make run`` saved in ``.bollard/admin.token``
(``--token`` for another one, ``--url`` for another server). With ``--cancel`` the call is
held for a person's approval (``bollard approvals list`` shows it, ``bollard approvals
approve ID`` or the API decides it); the script waits up to ``--wait`` seconds (default
600) and prints the result once it ran, or the error (rejected, expired, still pending).
Exit status 0 when the call succeeded, 1 with the error printed otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bollard.platform.client import BollardClientError, Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=None)
    parser.add_argument("--cancel", type=int, default=None, help="reservation id to cancel (needs approval)")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the approval")
    args = parser.parse_args()
    token = args.token or Path(".bollard/admin.token").read_text().strip()
    with Client(args.url, token) as bollard:
        try:
            if args.cancel is None:
                names = [t["function"]["name"] for t in bollard.tools("openai")]
                print(f"{len(names)} tools: {', '.join(names)}", file=sys.stderr)
                result = bollard.call("hotel", "list_reservations", {"status": "confirmed"})
                print(json.dumps(bollard.for_model(result, 8000), indent=2))  # sized for a model
                return 0
            # a write waits for a person: see it with `bollard approvals list` or
            # GET /api/approvals?status=pending, approve it with POST /api/approvals/{id}/approve
            print(f"cancelling reservation {args.cancel}: waiting for a person's approval", flush=True)
            result = bollard.call(
                "hotel", "cancel_reservation", {"id": args.cancel}, wait_for_approval=args.wait
            )
            print(json.dumps(result, indent=2))
            return 0
        except BollardClientError as e:  # typed: AuthError, InvalidRequestError, ApprovalError, …
            print(
                json.dumps({"error": {"code": e.code, "message": e.message, "details": e.details}}, indent=2)
            )
            return 1


if __name__ == "__main__":
    sys.exit(main())
