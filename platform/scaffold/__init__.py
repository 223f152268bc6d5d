"""``bollard new SLUG [--sql]``: a starting integration folder that passes ``bollard validate``."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bollard.platform.errors import ScaffoldError
from bollard.platform.manifest import slug_error

TEMPLATES = Path(__file__).parent / "templates"


def scaffold(slug: str, root: Path, *, sql: bool = False) -> Path:
    """Create ``root/slug`` from the REST (default) or SQL template; return its path.

    Raises :class:`ScaffoldError` when the slug is invalid or the folder exists.
    """
    problem = slug_error(slug)
    if problem:
        raise ScaffoldError(problem)
    target = root / slug
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another slug or remove it")
    kind = "sql" if sql else "rest"
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
