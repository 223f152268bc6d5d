"""Folders the tests read: the repository, Tale's manifest corpus, the shipped integrations."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "tale-manifests"
SHIPPED = REPO / "integrations"
