"""Setup guides: Markdown (CommonMark plus tables, markdown-it-py) to sanitised HTML (nh3).

Raw HTML in the Markdown is not rendered (``html: False``) and the output is cleaned by
nh3 (Ammonia) anyway: only its default safe tags and attributes survive, links get
``rel="noopener noreferrer"``, and no ``javascript:`` URL, script, style or event handler
reaches the page (DESIGN §13).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

MAX_GUIDE_CHARS = 200_000  # a manifest is at most 512 KB; a guide beyond this is cut


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


@lru_cache(maxsize=256)
def render_markdown(text: str) -> str:
    """``text`` (Markdown) as sanitised HTML, safe to insert unescaped."""
    html = _parser().render(text[:MAX_GUIDE_CHARS])
    return nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer")
