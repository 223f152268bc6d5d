"""Install an integration on a running server by uploading its folder as a zip (DESIGN §10).

Run the server first (``make run``), then, from the repository root in another terminal:

    .venv/bin/python examples/upload_zip.py path/to/my-integration --dry-run   # preview only
    .venv/bin/python examples/upload_zip.py path/to/my-integration             # install it
    .venv/bin/python examples/upload_zip.py path/to/my-integration --replace   # a higher version

The zip is built in memory from the folder's files (hidden files skipped) under a top
folder named after it, which is the slug unless ``--slug`` says otherwise, and sent to
``POST /api/settings/integrations``. The token defaults to the admin token ``make run``
saved in ``.bollard/admin.token`` (``--token`` for another one, ``--url`` for another
server). Prints the server's JSON answer; exit status 0 when it was installed (or, with
``--dry-run``, would be), 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import httpx


def zip_folder(folder: Path) -> bytes:
    """The folder's regular files (not hidden ones) in a zip, under ``<folder name>/``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                zf.write(path, f"{folder.name}/{path.name}")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path, help="the integration folder (config.json, connector.py, …)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=None)
    parser.add_argument("--slug", default=None, help="install under this slug (default: the folder's name)")
    parser.add_argument(
        "--replace", action="store_true", help="replace an installed version (needs a higher one)"
    )
    parser.add_argument("--dry-run", action="store_true", help="only show what would be installed")
    args = parser.parse_args()
    folder = args.folder.resolve()
    token = args.token or Path(".bollard/admin.token").read_text().strip()
    form = {"replace": str(args.replace).lower(), "dryRun": str(args.dry_run).lower()}
    if args.slug:
        form["slug"] = args.slug
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        r = client.post(
            "/api/settings/integrations",
            data=form,
            files={"file": (f"{folder.name}.zip", zip_folder(folder), "application/zip")},
        )
    print(json.dumps(r.json(), indent=2))
    return 0 if r.status_code in (200, 201) else 1


if __name__ == "__main__":
    sys.exit(main())
