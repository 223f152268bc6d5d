"""``bollard validate PATH…``: check integration folders as the server loads them (DESIGN §11).

Writes nothing. Exit 0 when every target is valid, 1 when any is invalid (each error is
listed) or nothing was found to validate.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bollard.platform.packages import CONFIG_FILE


def validate_manifest_only(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of ``config.json`` alone (``path`` is the file or its folder)."""
    # lazy: keeps CLI start-up fast
    import json

    from bollard.platform.lint import credential_lints_config, manifest_lints
    from bollard.platform.manifest import ManifestError, parse_manifest_bytes

    config = path / CONFIG_FILE if path.is_dir() else path
    try:
        raw = config.read_bytes()
        parsed = parse_manifest_bytes(raw)
    except OSError as e:
        return [f"{config.name}: cannot read ({e.strerror})"], []
    except ManifestError as e:
        return [f"{config.name}: {i}" for i in e.issues], []
    lints = manifest_lints(parsed.manifest) + credential_lints_config(json.loads(raw.decode("utf-8-sig")))
    return [], [f"{CONFIG_FILE}: {w}" for w in parsed.warnings] + [lint.message for lint in lints]


def validate_folder(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of an integration folder: the package loader's errors, then the
    lints of severity ``error``; warnings are exactly what the server shows for it."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.errors import PackageError
    from bollard.platform.packages import load_folder

    try:
        version = load_folder(path)
    except PackageError as e:
        return list(e.errors), []
    errors = [lint.message for lint in version.lints if lint.severity == "error"]
    warnings = [f"{CONFIG_FILE}: {w}" for w in version.warnings]
    warnings += [lint.message for lint in version.lints if lint.severity != "error"]
    return errors, warnings


def targets(paths: Sequence[str], *, manifest_only: bool = False) -> list[Path]:
    """The folders (or, with ``--manifest-only``, manifest files) to check.

    ``.`` or any relative path is made absolute so its name is the slug; a ``config.json``
    stands for its folder; a folder without ``config.json`` stands for its subfolders.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(os.path.abspath(raw))
        if p.is_file() and p.name == CONFIG_FILE and not manifest_only:
            out.append(p.parent)
        elif p.is_dir() and not (p / CONFIG_FILE).exists():
            out.extend(c for c in sorted(p.iterdir()) if c.is_dir() and not c.name.startswith("."))
        else:
            out.append(p)
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    """Print ✓/✗ per target with every error and warning; exit 1 when any is invalid."""
    failed = 0
    found = targets(args.paths, manifest_only=args.manifest_only)
    if not found:
        print("nothing to validate: no integration folders found", file=sys.stderr)
        return 1
    for path in found:
        warnings: list[str] = []
        if not path.exists():
            errors = [f"{path}: no such file or folder"]
        elif args.manifest_only:
            errors, warnings = validate_manifest_only(path)
        elif not path.is_dir():
            errors = [f"{path}: not an integration folder; pass the folder or its {CONFIG_FILE}"]
        else:
            errors, warnings = validate_folder(path)
        label = path.name if path.is_dir() else str(path)
        if errors:
            failed += 1
            print(f"✗ {label}")
            for e in errors:
                print(f"    error: {e}")
        else:
            print(f"✓ {label}")
        for w in warnings:
            print(f"    warning: {w}")
    print(f"{len(found) - failed} valid, {failed} invalid")
    return 1 if failed else 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check integration folders (or a directory of them) as the server loads them",
        description="Check integration folders as the server loads them: the manifest, the "
        "connector's compile errors, the icon, and the lints. PATH is an integration folder "
        "(. inside one), its config.json, or a directory of integration folders. Writes "
        "nothing. Exit status: 0 all valid, 1 any invalid (every error is listed).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--manifest-only", action="store_true", help="check config.json alone")
    p.set_defaults(func=cmd_validate)
