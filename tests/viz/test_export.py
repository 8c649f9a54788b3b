import re

import matplotlib

matplotlib.use("Agg")

import plotly.graph_objects as go  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mimoe_viz import assets  # noqa: E402
from mimoe_viz.export import html_page, plotly_fragment, save_html, save_png  # noqa: E402


def external_scripts(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\ssrc=[\"']([^\"']+)", page)


def test_page_inlines_libraries_only_when_asked():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[4, 5, 6]))
    bare = html_page("t", plotly_fragment(fig), plotly=False)
    full = html_page("t", plotly_fragment(fig), plotly=True, threedmol=True)
    assert assets.plotly_js()[:2000] not in bare
    assert assets.plotly_js()[:2000] in full and assets.threedmol_js()[:2000] in full
    assert external_scripts(full) == []  # nothing is fetched from a CDN
    assert '"x":[1,2,3]' in full.replace(" ", "")


def test_title_is_escaped():
    page = html_page("<b>x</b>", "", plotly=False, subtitle="a & b")
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in page and "a &amp; b" in page


def test_save_html_is_standalone(tmp_path):
    fig = go.Figure(go.Bar(x=["a"], y=[1.0]), layout={"title": {"text": "bars"}})
    page = save_html(fig, tmp_path / "sub" / "f.html").read_text()
    assert "<title>bars</title>" in page and external_scripts(page) == []


def test_save_png_from_figure_or_axes(tmp_path):
    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0])
    assert save_png(fig, tmp_path / "a").suffix == ".png"
    assert save_png(ax, tmp_path / "b.svg").read_text().startswith("<?xml")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="save_html"):
        save_png(go.Figure(), tmp_path / "c.png")


def test_missing_3dmol_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MIMOE_3DMOL_JS", str(tmp_path / "nope.js"))
    with pytest.raises(FileNotFoundError, match="not a file"):
        assets.threedmol_js_path()
    monkeypatch.delenv("MIMOE_3DMOL_JS")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(assets, "__file__", str(tmp_path / "x" / "assets.py"))
    with pytest.raises(FileNotFoundError, match="make assets"):
        assets.threedmol_js_path()
