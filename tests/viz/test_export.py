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


def test_parity_axes_carry_the_unit(result):
    from mimoe_viz.evaluation_figures import parity_figure, parity_mpl

    fig = parity_figure(result, unit="kcal/mol")
    assert fig.layout.xaxis.title.text == "true y (kcal/mol)"
    assert fig.layout.yaxis.title.text == "predicted y (kcal/mol)"
    assert parity_figure(result).layout.xaxis.title.text == "true y"  # default unchanged
    ax = parity_mpl(result, unit="°C")
    assert ax.get_xlabel() == "true y (°C)" and ax.get_ylabel() == "predicted y (°C)"
    assert parity_mpl(result).get_xlabel() == "true y"


def test_exported_molecule_page_has_a_print_picture(tmp_path):
    import base64
    import io

    from conftest import benzene
    from PIL import Image

    from mimoe_viz.mol3d import save_molecule_html

    z, pos = benzene()
    page = save_molecule_html(tmp_path / "m.html", z, pos, radius=3.0).read_text("utf-8")
    data = re.findall(r'class="mimoe-mol3d-static"[^>]*src="data:image/png;base64,([^"]+)"', page)
    assert len(data) == 1
    image = Image.open(io.BytesIO(base64.b64decode(data[0])))
    assert image.format == "PNG" and len(image.convert("RGB").getcolors(1 << 16) or "xx") > 1
    assert re.search(r"@media print\{[^}]*mimoe-mol3d-viewer", page)
