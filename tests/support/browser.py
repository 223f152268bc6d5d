"""A real browser for the web page tests: Debian's chromium driven by playwright.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``make test``
installs the Debian package when it is missing and it runs as root). Where it cannot be
had the browser tests skip with the reason, unless ``BOLLARD_REQUIRE_BROWSER=1`` (CI),
which turns the skip into a failure. :func:`axe_violations` runs the vendored axe-core
(``tests/web/vendor``) on a page; :func:`unreachable_by_keyboard` tabs through it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parents[1] / "web" / "vendor" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "web" / "screenshots"
BLOCKING_IMPACTS = ("serious", "critical")


def require_browser() -> bool:
    return os.environ.get("BOLLARD_REQUIRE_BROWSER") == "1"


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make install-test)"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"{CHROMIUM} is missing (apt-get install chromium; make test does it as root)"
    return None


def skip_without_browser() -> None:
    """Skip (or, with BOLLARD_REQUIRE_BROWSER=1, fail) when chromium cannot be had."""
    reason = browser_unavailable()
    if reason is None:
        return
    if require_browser():
        pytest.fail(f"{reason} (BOLLARD_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The serious and critical axe-core violations of ``page``'s current document:
    ``[{id, impact, help, targets}]``. axe is evaluated through the DevTools protocol,
    which the page's CSP does not govern (the page itself allows no inline script)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate("(source) => { (0, eval)(source); }", AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return [v for v in found if v["impact"] in BLOCKING_IMPACTS]


# Every control a person operates, with every <details> opened first (its summary is
# reachable and opens it with Enter; what it holds must be reachable then); hidden ones
# (display:none, visibility:hidden) are left out.
_MARK_CONTROLS = """() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    const sel = 'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), '
        + 'select, textarea, summary';
    const shown = e => e.checkVisibility({checkVisibilityCSS: true});
    const all = [...document.querySelectorAll(sel)].filter(shown);
    all.forEach((e, i) => e.setAttribute('data-kb', String(i)));
    return all.map(e => e.outerHTML.slice(0, 120));
}"""


def unreachable_by_keyboard(page: Any) -> list[str]:
    """The visible controls of ``page`` that pressing Tab never focuses (empty: all are
    reachable), after opening every ``<details>``. Focus starts at the top."""
    controls: list[str] = page.evaluate(_MARK_CONTROLS)
    page.evaluate(
        """() => {
            window.kbReached = new Set();
            document.addEventListener('focusin', e => {
                const mark = e.target.getAttribute && e.target.getAttribute('data-kb');
                if (mark !== null) window.kbReached.add(mark);
            });
            if (document.activeElement) document.activeElement.blur();
            window.scrollTo(0, 0);
        }"""
    )
    pressed, budget = 0, len(controls) * 6 + 20  # a date-time input takes a Tab per part
    while pressed < budget:
        for _ in range(10):
            page.keyboard.press("Tab")
        pressed += 10
        if page.evaluate("(n) => window.kbReached.size >= n", len(controls)):
            break
    reached: list[str] = page.evaluate("() => [...window.kbReached]")
    return [html for i, html in enumerate(controls) if str(i) not in reached]


def screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot to tests/web/screenshots/<name>.png (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, caret="initial")
