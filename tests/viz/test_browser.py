"""The pages open in a real browser, offline: 3D canvases and plotly plots render.

Headless Chromium (Debian's package) loads each page from a file with networking off, runs
its scripts, and we read back the DOM and a screenshot.
"""

import re

import plotly.graph_objects as go
import pytest
from chromium import dump_dom, non_blank_fraction, screenshot
from conftest import benzene

from mimoe_viz.export import save_html
from mimoe_viz.mol3d import save_molecule_html
from mimoe_viz.report import report

pytestmark = pytest.mark.browser

FAILURES = ("failed to load", "is not defined", "Cannot read properties")


def visible_text(dom: str) -> str:
    """The DOM without script bodies (inlined libraries contain error strings of their own)."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "", dom, flags=re.S)


def test_molecule_viewer_draws_in_its_box(tmp_path):
    z, pos = benzene()
    page = save_molecule_html(tmp_path / "mol.html", z, pos, radius=2.5, width=600, height=400)
    dom = dump_dom(page)
    assert "<canvas" in dom and not any(f in visible_text(dom) for f in FAILURES)
    assert 'data-status="ready"' in dom
    image = screenshot(page, tmp_path / "mol.png", width=800, height=700)
    # The molecule sits in the middle of the viewer: dark atoms/bonds on white.
    assert non_blank_fraction(image, (150, 150, 400, 450)) > 0.02
    assert non_blank_fraction(image, (650, 0, 700, 800)) < 0.01  # below the viewer: blank


def test_plotly_page_draws_offline(tmp_path):
    fig = go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2], marker_color="#1b9e77"))
    page = save_html(fig.update_layout(height=400, width=600), tmp_path / "bars.html")
    dom = dump_dom(page)
    assert 'class="main-svg"' in dom and dom.count('class="point"') == 3
    image = screenshot(page, tmp_path / "bars.png", width=800, height=600)
    assert non_blank_fraction(image) > 0.03


def test_report_renders_viewers_and_plots(tiny_run, tmp_path):
    page = report(tiny_run, out=tmp_path / "report.html")
    dom = dump_dom(page)
    assert not any(f in visible_text(dom) for f in FAILURES)
    assert dom.count('data-status="ready"') == 3  # every viewer finished drawing
    assert dom.count("<canvas") >= 3  # one WebGL viewer per example molecule
    assert dom.count('class="main-svg"') >= 10  # plotly drew its figures
    image = screenshot(page, tmp_path / "report.png", width=1280, height=2400)
    assert non_blank_fraction(image) > 0.01  # mostly white paper, with tables and curves
    assert non_blank_fraction(image, (1300, 0, 2400, 1280)) > 0.02  # the plots below
