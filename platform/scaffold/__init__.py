"""``bollard new SLUG [--sql|--ts]``: a starting integration folder that passes ``bollard validate``."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bollard.platform.errors import ScaffoldError
from bollard.platform.manifest import slug_error

TEMPLATES = Path(__file__).parent / "templates"


def scaffold(slug: str, root: Path, *, sql: bool = False, ts: bool = False) -> Path:
    """Create ``root/slug`` from the REST (default, ``connector.py``), SQL or TypeScript
    (``ts``: Tale's ``connector.ts``, DESIGN §3) template; return its path.

    Raises :class:`ScaffoldError` when the slug is invalid, the folder exists, or both
    ``sql`` and ``ts`` are asked for.
    """
    if sql and ts:
        raise ScaffoldError("choose one of --sql and --ts")
    problem = slug_error(slug)
    if problem:
        raise ScaffoldError(problem)
    target = root / slug
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another slug or remove it")
    kind = "sql" if sql else "ts" if ts else "rest"
    env = Environment(
        loader=FileSystemLoader(TEMPLATES / kind), undefined=StrictUndefined, keep_trailing_newline=True
    )
    title = slug.replace("-", " ").replace("_", " ").title()
    rendered = {
        name: env.get_template(name).render(slug=slug, title=title)
        for name in sorted(p.name for p in (TEMPLATES / kind).iterdir() if p.is_file())
    }
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".new-{slug}"
    tmp.mkdir()
    for name, text in rendered.items():
        (tmp / name).write_text(text)
    tmp.rename(target)
    return target
