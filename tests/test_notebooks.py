"""The tutorial notebooks: committed without outputs, one template, and they render offline.

nbval executes them cell by cell in ``make test`` (``--nbval-lax``), and tests/test_jupyterlab.py
runs them in JupyterLab and opens their HTML export offline. Here (slow) each one is also
executed by ``jupyter nbconvert --to html --execute`` in smoke mode and the page opened in
headless Chromium: no cell error, and the 3D viewers and plots draw without a network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from exported_page import chromium_render_problems

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
SECTIONS = ("Aim", "Theory", "Practical", "Discussion")
MAX_CELL_LINES = 15


# nbclient can miss the kernel's reply to a cell that opens ipywidgets comms and then wait for
# the whole cell timeout with the kernel idle (jupyter/nbclient#312, jupyter/nbconvert#2029;
# seen here in notebook 01's explore() cell). Smoke-mode cells take seconds, so a cell that
# runs past CELL_TIMEOUT_S is that hang, and the notebook is executed once more. A cell
# error fails at once, and a second timeout fails the test.
CELL_TIMEOUT_S = 180


def _export_html(path: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SMOKE_TEST": "1", "MIMOE_RUNS_DIR": str(out / "runs")}
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
           f"--ExecutePreprocessor.timeout={CELL_TIMEOUT_S}", "--output-dir", str(out),
           str(path)]  # fmt: skip
    for attempt in (1, 2):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=path.parent)
        if proc.returncode == 0 or "CellTimeoutError" not in proc.stderr:
            return proc
        if attempt == 1:
            print(f"{path.name}: a cell hit the {CELL_TIMEOUT_S} s timeout; executing again")
    return proc


def ids(paths):
    return [p.stem for p in paths]


def test_there_are_seven_tutorials():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_committed_without_outputs_but_the_checked_ones(path):
    # Only cells marked "# NBVAL_CHECK_OUTPUT" keep their (smoke-mode, text) outputs, which
    # nbval compares; `python tools/refresh_notebooks.py` writes them.
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT"):
            assert cell.outputs, f"a checked cell has no stored output: {cell.source[:60]}"
            assert cell.execution_count is not None  # nbval skips "unrun" cells
            for out in cell.outputs:
                assert out.output_type in ("stream", "execute_result", "display_data")
                assert set(out.get("data", {})) <= {"text/plain", "text/html"}
        else:
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_follows_the_template(path):
    nb = nbformat.read(path, as_version=4)
    headings = [line.strip("# ").strip() for cell in nb.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if line.startswith("## ")]  # fmt: skip
    found = [h for h in headings if h in SECTIONS]
    assert found == list(SECTIONS), headings
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "tutorial_scale(" in code[0], "the first code cell picks the smoke or full scale"
    for source in code:
        lines = [x for x in source.splitlines() if x.strip()]
        assert len(lines) <= MAX_CELL_LINES, source[:80]
        assert not re.search(r"^\s*(def|class) ", source, re.M), "no definitions in notebooks"


# Slow: the default suite checks the export of the notebook JupyterLab ran
# (tests/test_jupyterlab.py), so each tutorial runs once in a browser there; this is the
# headless path, a third execution of every tutorial.
@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.browser
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_exported_html_renders_offline(path, tmp_path):
    proc = _export_html(path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = tmp_path / f"{path.stem}.html"
    assert chromium_render_problems(page, path.read_text(), tmp_path / f"{path.stem}.png") == []
