"""A tutorial's HTML export renders offline: one check for the two ways a page is made.

``tests/test_jupyterlab.py`` exports the notebook that JupyterLab ran and saved (what a user's
"Save and Export Notebook As HTML" does), so the default suite runs each tutorial once in a
browser and checks both the live notebook and its page; ``tests/test_notebooks.py`` (slow)
exports with ``jupyter nbconvert --execute``, the headless path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from viz.chromium import dump_dom, non_blank_fraction, screenshot


def export_html(
    notebook: Path,
    out: Path,
    execute: bool = False,
    env: dict[str, str] | None = None,
    cell_timeout_s: int = 180,
) -> subprocess.CompletedProcess:
    """``jupyter nbconvert --to html`` of ``notebook`` into ``out``, running it if ``execute``."""
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(out)]
    if execute:
        cmd += ["--execute", f"--ExecutePreprocessor.timeout={cell_timeout_s}"]
    return subprocess.run(
        [*cmd, str(notebook)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        cwd=notebook.parent,
    )


def offline_render_problems(page: Path, source: str, png: Path) -> list[str]:
    """What is wrong with ``page`` (the export of a notebook whose text is ``source``).

    In headless Chromium without a network: no traceback or load failure on the page, the 3D
    viewers finished drawing, plotly drew its figures, and the screenshot is not blank.
    """
    problems = []
    if "Traceback (most recent call last)" in page.read_text():
        problems.append("the page shows a traceback")
    dom = dump_dom(page)
    visible = re.sub(r"<script\b[^>]*>.*?</script>", "", dom, flags=re.S)
    if "failed to load" in visible:
        problems.append("the page says something failed to load")
    if "show_molecule(" in source and 'data-status="ready"' not in dom:
        problems.append("a 3D viewer did not finish drawing")
    if re.search(r"_figure\(|routing_map\(|contribution_waterfall\(", source):
        if 'class="main-svg"' not in dom:
            problems.append("no plotly figure was drawn")
    drawn = non_blank_fraction(screenshot(page, png, width=1100, height=3000))
    if drawn <= 0.01:
        problems.append(f"the screenshot {png} is blank ({drawn:.2%} of pixels drawn)")
    return problems
