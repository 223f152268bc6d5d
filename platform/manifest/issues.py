"""What manifest validation reports: issues with field paths, the error, the parsed result.

Every problem names its field path (``operations[3].parametersSchema.properties.limit.type``,
DESIGN §2); :class:`ManifestError` carries all of them at once so a user fixes a manifest
in one round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bollard.platform.errors import ValidationFailed
from bollard.platform.manifest.models import Manifest


@dataclass(frozen=True)
class ManifestIssue:
    """One problem: ``path`` is the field path (``operations[3].name``), empty for the root."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(ValidationFailed):
    """Raised by :func:`parse_manifest`; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = issues
        super().__init__(
            "invalid_manifest", "; ".join(str(i) for i in issues), details=[str(i) for i in issues]
        )


@dataclass
class ParsedManifest:
    """A valid manifest plus its non-fatal ``warnings``."""

    manifest: Manifest
    warnings: list[ManifestIssue] = field(default_factory=list)


def format_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("operations", 3, "name")`` → ``operations[3].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
