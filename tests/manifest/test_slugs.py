"""Slugs (DESIGN §2): the folder name, the same rule for folders and uploads."""

from __future__ import annotations

import pytest

from bollard.platform.manifest import slug_error


@pytest.mark.parametrize("slug", ["hotel", "a", "my-api_2", "x" * 64])
def test_valid_slugs(slug: str) -> None:
    assert slug_error(slug) is None


@pytest.mark.parametrize(
    "slug", ["hotel\n", "Hotel", "-x", "_x", "a b", "a/b", "..", "", "x" * 65, "ä", "hotel\r"]
)
def test_invalid_slugs_are_refused(slug: str) -> None:
    # "hotel\n" passed before: `^…$` matches before a trailing newline.
    assert slug_error(slug) is not None
