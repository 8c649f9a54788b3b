"""A tutorial's HTML export renders offline: one check for the two ways a page is made.

``tests/test_jupyterlab.py`` exports the notebook that JupyterLab ran and saved (what a user's
"Save and Export Notebook As HTML" does) and opens the page in its Playwright browser, offline,
so the default suite runs each tutorial once in a browser and checks both the live notebook
and its page. ``tests/test_notebooks.py`` (slow) exports with ``jupyter nbconvert --execute``,
the headless path, and opens the page with headless Chromium's command line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from jupyterlab_driver import decode
from viz.chromium import dump_dom, non_blank_fraction, screenshot

PAGE_SIZE = {"width": 1100, "height": 3000}
# What the page must show, by what the notebook calls:
# problem -> (pattern in the source, text in the DOM, the same as a CSS selector).
EXPECTED = {
    "a 3D viewer did not finish drawing": (
        r"show_molecule\(",
        'data-status="ready"',
        '[data-status="ready"]',
    ),
    "no plotly figure was drawn": (
        r"_figure\(|routing_map\(|contribution_waterfall\(",
        'class="main-svg"',
        ".main-svg",
    ),
}


def export_html(notebook: Path, out: Path) -> Path:
    """The HTML export of ``notebook`` as saved, outputs included (nothing is run)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    page = out / f"{notebook.stem}.html"
    page.write_text(body, encoding="utf-8")
    return page


def _expected(source: str) -> dict[str, tuple[str, str, str]]:
    """The entries of :data:`EXPECTED` that apply to a notebook whose text is ``source``."""
    return {problem: entry for problem, entry in EXPECTED.items() if re.search(entry[0], source)}


def render_problems(html: str, dom: str, image: np.ndarray, source: str) -> list[str]:
    """What is wrong with an exported page, from its HTML, its DOM after the scripts ran and
    a screenshot (float RGB in [0, 1]), for a notebook whose text is ``source``."""
    problems = []
    if "Traceback (most recent call last)" in html:
        problems.append("the page shows a traceback")
    visible = re.sub(r"<script\b[^>]*>.*?</script>", "", dom, flags=re.S)
    if "failed to load" in visible:
        problems.append("the page says something failed to load")
    problems += [problem for problem, (_, text, _) in _expected(source).items() if text not in dom]
    drawn = non_blank_fraction(image)
    if drawn <= 0.01:
        problems.append(f"the screenshot is blank ({drawn:.2%} of pixels drawn)")
    return problems


def chromium_render_problems(page: Path, source: str, png: Path) -> list[str]:
    """:func:`render_problems` of ``page`` opened by headless Chromium's command line."""
    image = screenshot(page, png, **PAGE_SIZE)
    return render_problems(page.read_text(), dump_dom(page), image, source)


def browser_render_problems(browser: Any, page: Path, source: str, png: Path) -> list[str]:
    """:func:`render_problems` of ``page`` opened offline in a Playwright ``browser``.

    Waits (at most 30 s each) for what the page should show, then reads the DOM and
    takes a screenshot, written to ``png``.
    """
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context(offline=True, viewport=PAGE_SIZE)
    try:
        tab = context.new_page()
        tab.goto(page.resolve().as_uri(), wait_until="load", timeout=60_000)
        for _, _, selector in _expected(source).values():
            try:
                tab.wait_for_selector(selector, state="attached", timeout=30_000)
            except PlaywrightError:
                pass  # render_problems names what is missing
        image = decode(tab.screenshot(path=png, timeout=30_000)) / 255.0
        return render_problems(page.read_text(), tab.content(), image, source)
    finally:
        context.close()
