import json
import re
import sys

import numpy as np
import pytest
from conftest import benzene, chain, water
from scipy.spatial.distance import pdist

from mimoe_core.topology import DEFAULT_RADII, descriptor_curves
from mimoe_viz._style import BEYOND_CUTOFFS, expert_colors
from mimoe_viz.assets import threedmol_js
from mimoe_viz.mol3d import (
    DEFAULT_CUTOFFS,
    filtration_edges,
    filtration_state,
    filtration_widget,
    has_py3dmol,
    molecule_html,
    molecule_view,
    save_molecule_html,
)

CUTOFFS = list(DEFAULT_CUTOFFS)
MOLECULES = {"benzene": benzene(), "water": water(), "chain7": chain(7)}


def random_molecule(n: int = 9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.choice([1, 6, 7, 8, 9], size=n), rng.uniform(-2.5, 2.5, (n, 3))


def is_triangle_free(pos: np.ndarray, radius: float) -> bool:
    adj = (np.linalg.norm(pos[:, None] - pos[None], axis=-1) <= radius).astype(int)
    np.fill_diagonal(adj, 0)
    return np.trace(adj @ adj @ adj) == 0


def has_library(text: str) -> bool:
    return threedmol_js()[-2000:] in text


def embedded_data(fragment: str) -> dict:
    match = re.search(r'<script type="application/json" id="[^"]+-data">(.*?)</script>', fragment)
    assert match is not None
    return json.loads(match.group(1))


# ----------------------------------------------------------------------------- edges


@pytest.mark.parametrize("name", sorted(MOLECULES))
@pytest.mark.parametrize("radius", [0.0, 1.0, 1.4, 2.2, 2.5, 3.0, 4.0, 4.5])
def test_edge_count_equals_pairs_within_radius(name, radius):
    _, pos = MOLECULES[name]
    edges = filtration_edges(pos, radius, CUTOFFS)
    assert edges["i"].size == int(np.sum(pdist(pos) <= radius))
    assert np.all(edges["i"] < edges["j"])
    dist = np.linalg.norm(pos[edges["i"]] - pos[edges["j"]], axis=1)
    np.testing.assert_allclose(edges["length"], dist, atol=1e-12)


def test_edges_sorted_by_length_then_indices():
    _, pos = random_molecule(12, seed=3)
    pos = np.round(pos * 2) / 2  # lattice points: many equal lengths
    edges = filtration_edges(pos, 5.0, CUTOFFS)
    keys = list(zip(edges["length"], edges["i"], edges["j"], strict=True))
    assert keys == sorted(keys)


def test_expert_index_and_colour_per_cutoff():
    # Atom 0 at the origin, one partner per interesting length around it.
    lengths = [1.0, 2.0, 2.2, 2.5, 3.7, 4.0, 4.5]
    pos = np.zeros((len(lengths) + 1, 3))
    for k, d in enumerate(lengths, start=1):
        angle = 2 * np.pi * k / len(lengths)
        pos[k] = [d * np.cos(angle), d * np.sin(angle), 0.0]
    edges = filtration_edges(pos, 4.6, CUTOFFS)
    from_origin = edges["i"] == 0
    by_length = dict(
        zip(np.round(edges["length"][from_origin], 9), edges["expert"][from_origin], strict=True)
    )
    assert by_length == {1.0: 0, 2.0: 0, 2.2: 1, 2.5: 1, 3.7: 4, 4.0: 4, 4.5: -1}
    colors = expert_colors(len(CUTOFFS))
    for e, c in zip(edges["expert"], edges["color"], strict=True):
        assert c == (BEYOND_CUTOFFS if e < 0 else colors[e])


def test_two_atoms_22_and_45_angstrom():
    pos = np.array([[0.0, 0, 0], [2.2, 0, 0], [6.7, 0, 0]])
    edges = filtration_edges(pos, 10.0, CUTOFFS)
    assert edges["length"].tolist() == pytest.approx([2.2, 4.5, 6.7])
    assert edges["expert"].tolist() == [1, -1, -1]
    assert edges["color"] == [expert_colors(5)[1], BEYOND_CUTOFFS, BEYOND_CUTOFFS]


def test_edges_grow_monotonically_with_radius():
    _, pos = random_molecule(10, seed=1)
    previous: set[tuple[int, int]] = set()
    counts = []
    for r in DEFAULT_RADII:
        edges = filtration_edges(pos, r, CUTOFFS)
        current = set(zip(edges["i"].tolist(), edges["j"].tolist(), strict=True))
        assert previous <= current
        previous = current
        counts.append(len(current))
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_radius_equal_to_distance_is_an_edge():
    pos = np.array([[0.0, 0, 0], [2.5, 0, 0]])
    assert filtration_edges(pos, 2.5, CUTOFFS)["i"].size == 1
    assert filtration_edges(pos, np.nextafter(2.5, 0), CUTOFFS)["i"].size == 0


@pytest.mark.parametrize(
    ("pos", "radius", "cutoffs"),
    [
        (np.zeros((3, 2)), 1.0, CUTOFFS),
        (np.zeros((0, 3)), 1.0, CUTOFFS),
        (np.array([[0.0, 0, np.nan]]), 1.0, CUTOFFS),
        (np.array([[0.0, 0, np.inf]]), 1.0, CUTOFFS),
        (np.zeros((2, 3)), -0.1, CUTOFFS),
        (np.zeros((2, 3)), np.nan, CUTOFFS),
        (np.zeros((2, 3)), 1.0, []),
        (np.zeros((2, 3)), 1.0, [3.0, 2.0]),
        (np.zeros((2, 3)), 1.0, [0.0, 2.0]),
    ],
)
def test_bad_input_raises(pos, radius, cutoffs):
    with pytest.raises(ValueError):
        filtration_edges(pos, radius, cutoffs)


def test_bad_atomic_numbers_raise():
    z, pos = water()
    for bad in ([8, 1], [8, 1, 0], [8, 1, 200], [8.0, 1.5, 1.0]):
        with pytest.raises(ValueError):
            filtration_state(bad, pos, 1.0)


# ----------------------------------------------------------------------------- state


@pytest.mark.parametrize("name", sorted(MOLECULES))
def test_state_betti_equals_descriptor_curves(name):
    z, pos = MOLECULES[name]
    curves = descriptor_curves(pos, DEFAULT_RADII)
    for t in range(0, len(DEFAULT_RADII), 4):
        r = float(DEFAULT_RADII[t])
        state = filtration_state(z, pos, r, CUTOFFS)
        assert state["betti0"] == curves["betti0"][t]
        assert state["betti1"] == curves["betti1"][t]
        assert state["n_edges"] == int(np.sum(pdist(pos) <= r))
        # Without triangles every graph cycle is a Rips 1-cycle: E = n - b0 + b1.
        if is_triangle_free(pos, r):
            assert state["n_edges"] == len(z) - state["betti0"] + state["betti1"]


def test_benzene_ring_at_14():
    z, pos = benzene()
    state = filtration_state(z, pos, 1.4, CUTOFFS)
    assert (state["betti0"], state["betti1"], state["n_edges"]) == (1, 1, 12)
    assert state["summary"] == "r = 1.40 Å · 12 edges · β0 = 1 · β1 = 1"
    assert "β<sub>1</sub> = 1" in state["summary_html"]
    assert state["edges_per_expert"].tolist() == [12, 0, 0, 0, 0]
    assert state["n_beyond"] == 0


def test_state_marks_complete_experts():
    z, pos = chain(6)
    state = filtration_state(z, pos, 3.0, CUTOFFS)
    assert state["complete"].tolist() == [True, True, True, False, False]
    state = filtration_state(z, pos, 4.6, CUTOFFS)
    assert state["complete"].all()
    assert state["edges_per_expert"].sum() + state["n_beyond"] == state["n_edges"]
    assert state["n_beyond"] == int(np.sum((pdist(pos) > 4.0) & (pdist(pos) <= 4.6)))


def test_single_atom():
    state = filtration_state([6], np.zeros((1, 3)), 3.0, CUTOFFS)
    assert (state["n_edges"], state["betti0"], state["betti1"]) == (0, 1, 0)
    assert state["i"].shape == (0,) and state["color"] == []
    assert state["summary"] == "r = 3.00 Å · 0 edges · β0 = 1 · β1 = 0"


def test_coincident_atoms():
    pos = np.array([[0.0, 0, 0], [0.0, 0, 0], [1.5, 0, 0]])
    state = filtration_state([6, 6, 8], pos, 0.0, CUTOFFS)
    assert state["n_edges"] == 1 and state["length"].tolist() == [0.0]
    assert state["expert"].tolist() == [0]
    assert state["betti0"] == descriptor_curves(pos, [0.0])["betti0"][0] == 2
    assert filtration_state([6, 6, 8], pos, 1.5, CUTOFFS)["summary"].startswith(
        "r = 1.50 Å · 3 edges · β0 = 1"
    )


def test_state_is_rigid_motion_invariant():
    z, pos = random_molecule(8, seed=5)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    a = filtration_state(z, pos, 2.7, CUTOFFS)
    b = filtration_state(z, pos @ q.T + 1.5, 2.7, CUTOFFS)
    assert (a["n_edges"], a["betti0"], a["betti1"]) == (b["n_edges"], b["betti0"], b["betti1"])
    assert a["expert"].tolist() == b["expert"].tolist()


# ----------------------------------------------------------------------------- widget


def test_widget_slider_updates_summary():
    pytest.importorskip("ipywidgets")
    z, pos = benzene()
    widget = filtration_widget(z, pos)
    assert widget.slider.value == 4.0  # the largest cutoff
    assert widget.current_state["radius"] == 4.0
    assert "4.00 Å" in widget.summary.value
    for r in (1.4, 2.3, 3.1):
        widget.slider.value = r
        expected = int(np.sum(pdist(pos) <= r))
        assert widget.current_state["n_edges"] == expected
        assert f"{expected} edges" in widget.summary.value
        assert f"r = {r:.2f} Å" in widget.summary.value
        script = widget.driver.outputs[0]["data"]["text/html"]
        assert f".draw({widget.slider.index})" in script
        assert widget.element_id in script


def test_widget_legend_and_grid():
    pytest.importorskip("ipywidgets")
    z, pos = water()
    widget = filtration_widget(z, pos, radii=[1.0, 2.0, 3.0], radius=2.5, library="none")
    assert [v for _, v in widget.slider.options] == [1.0, 2.0, 2.5, 3.0]
    assert widget.slider.value == 2.5
    assert widget.legend.value.count("opacity:1.0") == 2  # E1 (2 Å), E2 (2.5 Å)
    widget.slider.value = 1.0
    assert widget.legend.value.count("opacity:1.0") == 0
    viewer_html = widget.viewer.outputs[0]["data"]["text/html"]
    assert widget.element_id in viewer_html and not has_library(viewer_html)
    # The Python slider and legend drive it: none of the page's own controls.
    assert 'type="range"' not in viewer_html and 'data-cutoff="' not in viewer_html


# ----------------------------------------------------------------------------- py3Dmol


def test_molecule_view_has_one_cylinder_per_edge():
    pytest.importorskip("py3Dmol")
    assert has_py3dmol()
    z, pos = benzene()
    for radius, cutoff_edges in ((None, 4.0), (2.3, 2.3)):
        view = molecule_view(z, pos, radius=radius)
        js = view.write_html()
        n = int(np.sum(pdist(pos) <= cutoff_edges))
        assert js.count(".addCylinder(") == n
        assert js.count(".addModel(") == 1 and '"xyz"' in js
        assert js.count("\\nC ") == 6 and js.count("\\nH ") == 6
        colors = set(re.findall(r'"color": "(#[0-9a-f]{6})"', js))
        assert colors <= set(expert_colors(5)) | {BEYOND_CUTOFFS}


def test_molecule_view_legend_optional():
    pytest.importorskip("py3Dmol")
    z, pos = water()
    assert molecule_view(z, pos, legend=False).write_html().count(".addLabel(") == 0
    assert molecule_view(z, pos).write_html().count(".addLabel(") == 1 + len(CUTOFFS)


def test_missing_py3dmol_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "py3Dmol", None)  # makes the import fail
    z, pos = water()
    with pytest.raises(ImportError, match=r"mimoe\[viz\]"):
        molecule_view(z, pos)


# ----------------------------------------------------------------------------- HTML


def test_molecule_html_library_only_when_asked():
    z, pos = water()
    with_lib = molecule_html(z, pos, include_library=True)
    without = molecule_html(z, pos, include_library=False)
    assert has_library(with_lib) and not has_library(without)
    assert len(with_lib) > len(without) + 100_000
    assert "cdn" not in without.lower() and "http" not in without


def test_molecule_html_embeds_edges():
    z, pos = benzene()
    fragment = molecule_html(z, pos, radius=2.3, include_library=False)
    data = embedded_data(fragment)
    assert (
        data["radii"] == [float(r) for r in DEFAULT_RADII] and data["radii"][data["index"]] == 2.3
    )
    edges = filtration_edges(pos, DEFAULT_RADII[-1], CUTOFFS)
    assert [e[:2] for e in data["edges"]] == np.stack([edges["i"], edges["j"]], 1).tolist()
    assert [e[3] for e in data["edges"]] == edges["expert"].tolist()
    assert data["colors"] == expert_colors(5) and data["beyond"] == BEYOND_CUTOFFS
    curves = descriptor_curves(pos, DEFAULT_RADII)
    assert data["betti1"] == curves["betti1"].astype(int).tolist()
    # The JS draws the prefix of edges with length <= r: the same counts as Python.
    lengths = np.array([e[2] for e in data["edges"]])
    for r in data["radii"]:
        assert np.sum(lengths <= r) == filtration_state(z, pos, r)["n_edges"]
    assert 'type="range"' in fragment and 'max="40"' in fragment
    assert filtration_state(z, pos, 2.3)["summary"] in fragment
    for cutoff in CUTOFFS:
        assert f'data-cutoff="{cutoff!r}"' in fragment


def test_molecule_html_without_slider_and_unique_ids():
    z, pos = water()
    fragment = molecule_html(z, pos, radii=None, include_library=False)
    assert 'type="range"' not in fragment
    assert embedded_data(fragment)["radii"] == [4.0]
    ids = {re.search(r'<div id="([^"]+)"', molecule_html(z, pos, include_library=False))[1]
           for _ in range(2)}  # fmt: skip
    assert len(ids) == 2
    custom = molecule_html(z, pos, include_library=False, element_id="mol-a")
    assert '<div id="mol-a"' in custom and 'id="mol-a-data"' in custom
    with pytest.raises(ValueError):
        molecule_html(z, pos, include_library=False, element_id='x" onload="alert(1)')


def test_save_molecule_html(tmp_path):
    z, pos = chain(5)
    path = save_molecule_html(tmp_path / "mol.html", z, pos, title="chain <5>", radius=1.6)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert "chain &lt;5&gt;" in text and has_library(text)
    assert embedded_data(text)["radii"][embedded_data(text)["index"]] == 1.6


# ----------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_html_slider_draws_in_chromium(tmp_path):
    from chromium import dump_dom

    z, pos = benzene()
    page = save_molecule_html(tmp_path / "mol.html", z, pos, radius=2.3)
    dom = dump_dom(page)
    assert 'data-status="ready"' in dom
    assert f'data-edges="{filtration_state(z, pos, 2.3)["n_edges"]}"' in dom


@pytest.mark.browser
def test_widget_driver_script_in_chromium(tmp_path):
    pytest.importorskip("ipywidgets")
    from chromium import dump_dom

    z, pos = water()
    widget = filtration_widget(z, pos, library="inline")
    widget.slider.value = 1.0
    # The driver runs before the viewer exists here: the index waits in mimoeMol3dPending.
    parts = [widget.driver.outputs[0]["data"]["text/html"],
             widget.viewer.outputs[0]["data"]["text/html"]]  # fmt: skip
    page = tmp_path / "widget.html"
    page.write_text("<!doctype html><meta charset=utf-8><body>" + "".join(parts), "utf-8")
    dom = dump_dom(page)
    assert 'data-status="ready"' in dom and 'data-radius="1"' in dom
    assert f'data-edges="{widget.current_state["n_edges"]}"' in dom


# ----------------------------------------------------------------------------- static picture


def static_pngs(text: str) -> list[bytes]:
    import base64

    found = re.findall(r'class="mimoe-mol3d-static"[^>]*src="data:image/png;base64,([^"]+)"', text)
    return [base64.b64decode(data) for data in found]


def open_png(png: bytes):
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def test_molecule_png_size_colours_and_orientation():
    from mimoe_viz.mol3d import molecule_png

    # O on the left (-x), C on the right (+x), H above (+y): the 3D viewer's start view.
    z, pos = [8, 6, 1], [[-1.5, 0, 0], [1.5, 0, 0], [0.0, 1.8, 0]]
    pixels = open_png(molecule_png(z, pos, radius=3.1, width=300, height=200))
    assert pixels.shape == (200, 300, 3)
    red = np.all(pixels == [255, 13, 13], axis=-1)
    grey = np.all(pixels == [144, 144, 144], axis=-1)
    assert red[:, :150].sum() > 50 and red[:, 150:].sum() == 0
    assert grey[:, 150:].sum() > 50 and grey[:, :150].sum() == 0
    rows = np.flatnonzero(red.any(axis=1))
    assert rows.mean() > 60  # O sits below the H (image rows grow downwards)
    edge = np.all(pixels == [int(expert_colors(5)[2][i : i + 2], 16) for i in (1, 3, 5)], -1)
    assert edge.sum() > 20  # the 3.0 Å O-C edge of G(3.1), in the 3.0 Å expert's colour
    far = open_png(molecule_png(z, pos, radius=1.0, width=300, height=200))
    assert not np.all(far == [int(expert_colors(5)[2][i : i + 2], 16) for i in (1, 3, 5)], -1).any()


def test_html_views_carry_a_static_picture(tmp_path):
    z, pos = benzene()
    page = save_molecule_html(tmp_path / "mol.html", z, pos, radius=2.3).read_text("utf-8")
    pngs = static_pngs(page)
    assert len(pngs) == 1 and len(np.unique(open_png(pngs[0]).reshape(-1, 3), axis=0)) > 1
    assert "@media print" in page and "<noscript><style>" in page
    assert static_pngs(molecule_html(z, pos, include_library=False, static=False)) == []
    widget = filtration_widget(z, pos, library="none")
    assert static_pngs(widget.viewer.outputs[0]["data"]["text/html"]) == []


@pytest.mark.browser
def test_static_picture_hidden_when_3d_works_shown_without_webgl(tmp_path):
    from chromium import dump_dom

    z, pos = water()
    page = save_molecule_html(tmp_path / "mol.html", z, pos, element_id="m1")
    dom = dump_dom(page)
    assert 'data-status="ready"' in dom
    assert re.search(r'<img id="m1-static"[^>]*style="display: ?block', dom) is None
    # A 3Dmol.js whose createViewer fails, as without WebGL: the picture replaces the view.
    broken = "<script>window.$3Dmol = {createViewer: function () { return null; }};</script>"
    fragment = molecule_html(z, pos, include_library=False, element_id="m2")
    page = tmp_path / "nowebgl.html"
    page.write_text(f"<!doctype html><meta charset=utf-8><body>{broken}{fragment}", "utf-8")
    dom = dump_dom(page)
    assert 'data-status="no-webgl"' in dom
    assert re.search(r'<img id="m2-static"[^>]*style="display: ?block', dom)
