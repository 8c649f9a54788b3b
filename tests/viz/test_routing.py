import dataclasses
import re

import matplotlib
import numpy as np
import pytest
from conftest import CUTOFFS, benzene, chain, make_result, water

from mimoe_viz import routing
from mimoe_viz._style import expert_colors, expert_labels

pytest.importorskip("plotly")
matplotlib.use("Agg")

LABELS = expert_labels(CUTOFFS)
COLORS = expert_colors(len(CUTOFFS))


def _logit(p):
    return np.log(p / (1 - p))


# --------------------------------------------------------------------------- helpers


def test_expected_cutoff_and_dominant(result):
    ok = result.ok
    exp = routing.expected_cutoff(result)
    np.testing.assert_allclose(exp[ok], result.alpha[ok] @ np.array(CUTOFFS))
    assert np.isnan(exp[5]) and np.isnan(exp).sum() == 1
    assert np.all((exp[ok] >= 2.0) & (exp[ok] <= 4.0))
    dom = routing.dominant_expert(result)
    assert dom.dtype.kind == "i" and dom[5] == -1
    np.testing.assert_array_equal(dom[ok], result.alpha[ok].argmax(axis=1))


def test_expert_usage_matches_numpy(result):
    share, mean_alpha = routing.expert_usage(result)
    alpha = result.alpha[result.ok]
    np.testing.assert_allclose(share, (alpha > 0).mean(axis=0))
    np.testing.assert_allclose(mean_alpha, alpha.mean(axis=0))
    np.testing.assert_allclose(mean_alpha.sum(), 1.0)


def test_routing_order(result):
    ok = np.flatnonzero(result.ok)
    np.testing.assert_array_equal(routing.routing_order(result, "input"), ok)
    by_size = routing.routing_order(result, "size")
    assert sorted(by_size) == list(ok)
    assert np.all(np.diff(result.num_atoms[by_size]) >= 0)
    by_dom = routing.routing_order(result, "dominant")
    dom = routing.dominant_expert(result)[by_dom]
    assert np.all(np.diff(dom) >= 0)
    weight = result.alpha[by_dom, dom]
    for e in np.unique(dom):
        assert np.all(np.diff(weight[dom == e]) <= 0)
    with pytest.raises(ValueError, match="sort_by"):
        routing.routing_order(result, "alphabetical")


def test_size_needs_structures(result):
    bare = dataclasses.replace(result, atomic_numbers=[], positions=[])
    with pytest.raises(ValueError, match="no 3D structures"):
        routing.routing_order(bare, "size")
    with pytest.raises(ValueError, match="no 3D structures"):
        routing.alpha_vs_size_figure(bare)
    routing.routing_map(bare, "dominant")  # hover says the size is unknown, no crash


def test_all_skipped_raises():
    res = make_result([water(), chain(4)], skipped=(0, 1))
    with pytest.raises(ValueError, match="no 'ok' entries"):
        routing.routing_map(res)
    with pytest.raises(ValueError, match="no 'ok' entries"):
        routing.expert_usage_figure(res)


def test_inconsistent_result_shapes(result):
    bad = dataclasses.replace(result, cutoffs=CUTOFFS[:3])
    with pytest.raises(ValueError, match="alpha has shape"):
        routing.expected_cutoff(bad)


# --------------------------------------------------------------------------- per molecule


def test_alpha_figure(result):
    fig = routing.alpha_figure(result, 0, layout={"height": 321})
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert list(bar.x) == LABELS
    np.testing.assert_allclose(bar.y, result.alpha[0])
    assert list(bar.marker.color) == COLORS
    assert (np.asarray(bar.y) == 0).sum() == 3  # top-2 of 5: three experts at 0
    assert "mol0" in fig.layout.title.text and "c1ccccc1" in fig.layout.title.text
    assert fig.layout.height == 321


@pytest.mark.parametrize(
    "func",
    [
        routing.alpha_figure,
        routing.contribution_waterfall,
        routing.alpha_mpl,
    ],
)
def test_per_molecule_bad_index(result, func):
    with pytest.raises(ValueError, match="entry 5 \\(mol5\\) was skipped: invalid SMILES"):
        func(result, 5)
    with pytest.raises(ValueError, match="out of range"):
        func(result, len(result))
    with pytest.raises(ValueError, match="out of range"):
        func(result, -1)
    with pytest.raises(ValueError, match="integer"):
        func(result, "mol0")


def test_waterfall_regression_sums(result):
    for i in np.flatnonzero(result.ok):
        fig = routing.contribution_waterfall(result, int(i))
        wf = fig.data[0]
        assert wf.type == "waterfall"
        selected = np.flatnonzero(result.alpha[i] > 0)
        assert list(wf.measure) == ["absolute"] + ["relative"] * len(selected) + ["total"]
        assert list(wf.x) == ["baseline", *[LABELS[e] for e in selected], "prediction"]
        y = np.asarray(wf.y, dtype=float)
        assert y[0] == result.baseline[0]
        np.testing.assert_allclose(y[1:-1], result.contributions_from_baseline()[i, selected, 0])
        np.testing.assert_allclose(y[:-1].sum(), result.prediction[i, 0])
        np.testing.assert_allclose(y[-1], result.prediction[i, 0])
        ticks = list(fig.layout.xaxis.ticktext)
        assert all(COLORS[e] in t for e, t in zip(selected, ticks[1:-1], strict=True))


def test_waterfall_classification(classification_result):
    res = classification_result
    for i in range(len(res)):
        fig = routing.contribution_waterfall(res, i, target="y")
        y = np.asarray(fig.data[0].y, dtype=float)
        logit = _logit(res.prediction[i, 0])
        np.testing.assert_allclose(y[:-1].sum(), logit, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(y[-1], logit, rtol=1e-6, atol=1e-9)
        assert y[0] == 0.0
        assert f"P(y) = {res.prediction[i, 0]:.3f}" in fig.layout.title.text
        assert fig.layout.yaxis.title.text == "logit P(y)"


def test_waterfall_target_and_inconsistency(result):
    with pytest.raises(ValueError, match="unknown target"):
        routing.contribution_waterfall(result, 0, target="logS")
    with pytest.raises(ValueError, match="out of range"):
        routing.contribution_waterfall(result, 0, target=1)
    bad = dataclasses.replace(result, prediction=result.prediction + 1.0)
    with pytest.warns(RuntimeWarning, match="does not reproduce"):
        routing.contribution_waterfall(bad, 0)


# --------------------------------------------------------------------------- per data set


@pytest.mark.parametrize("sort_by", ["size", "dominant", "input"])
def test_routing_map_z_is_sorted_alpha(result, sort_by):
    fig = routing.routing_map(result, sort_by=sort_by)
    hm = fig.data[0]
    order = routing.routing_order(result, sort_by)
    np.testing.assert_allclose(np.asarray(hm.z, dtype=float), result.alpha[order])
    assert list(hm.x) == LABELS
    assert (hm.zmin, hm.zmax) == (0.0, 1.0)
    assert len(hm.z) == result.ok.sum() == 11
    first = order[0]
    assert result.ids[first] in hm.hovertext[0][0]
    assert result.smiles[first] in hm.hovertext[0][0]
    assert f"{result.num_atoms[first]} atoms" in hm.hovertext[0][0]
    assert sort_by in fig.layout.title.text


def test_routing_map_classification(classification_result):
    fig = routing.routing_map(classification_result, "size")
    assert len(fig.data[0].z) == len(classification_result)


def test_expert_usage_figure(result):
    fig = routing.expert_usage_figure(result)
    assert len(fig.data) == 2
    alpha = result.alpha[result.ok]
    np.testing.assert_allclose(fig.data[0].y, (alpha > 0).mean(axis=0))
    np.testing.assert_allclose(fig.data[1].y, alpha.mean(axis=0))
    for trace in fig.data:
        assert list(trace.x) == LABELS
        assert list(trace.marker.color) == COLORS


def test_alpha_vs_size_figure(result):
    fig = routing.alpha_vs_size_figure(result)
    dots = [t for t in fig.data if t.mode == "markers"]
    x = np.concatenate([t.x for t in dots])
    y = np.concatenate([t.y for t in dots])
    ok = result.ok
    got = np.array(sorted(zip(x, y, strict=True)))
    want = np.array(
        sorted(zip(result.num_atoms[ok], routing.expected_cutoff(result)[ok], strict=True))
    )
    np.testing.assert_allclose(got, want)
    dom = routing.dominant_expert(result)
    for trace in dots:
        e = LABELS.index(trace.name.removeprefix("dominant "))
        assert trace.marker.color == COLORS[e]
        assert len(trace.x) == (dom == e).sum()
    trend = fig.data[-1]
    assert trend.name == "binned mean"
    assert np.all(np.diff(trend.x) > 0)
    assert sorted(s.y0 for s in fig.layout.shapes) == CUTOFFS
    assert "Spearman" in fig.layout.title.text


def test_alpha_vs_size_detects_a_size_trend():
    structures = [chain(n) for n in range(3, 13)]
    res = make_result(structures)
    # route small molecules to short cutoffs and large ones to long cutoffs
    alpha = np.zeros_like(res.alpha)
    alpha[np.arange(len(res)), np.arange(len(res)) // 2] = 1.0
    fig = routing.alpha_vs_size_figure(dataclasses.replace(res, alpha=alpha))
    rho = float(re.search(r"Spearman ρ = ([+-][0-9.]+)", fig.layout.title.text).group(1))
    assert rho > 0.95  # ties within pairs of sizes keep it just below 1
    trend = fig.data[-1]
    assert np.all(np.diff(trend.y) >= 0)


def test_binned_trend_with_many_sizes(classification_result):
    fig = routing.alpha_vs_size_figure(classification_result)
    trend = fig.data[-1]
    assert len(trend.x) == 12  # 21 distinct sizes -> 12 equal-count bins
    np.testing.assert_allclose(
        np.mean(trend.y), np.nanmean(routing.expected_cutoff(classification_result)), rtol=0.05
    )


def test_alpha_vs_descriptor_figure(result):
    fig = routing.alpha_vs_descriptor_figure(result, "wiener")
    t = int(np.argmin(np.abs(np.asarray(result.radii) - 3.0)))
    d = result.descriptor_names.index("wiener")
    dots = [t_ for t_ in fig.data if t_.mode == "markers"]
    x = np.sort(np.concatenate([t_.x for t_ in dots]))
    np.testing.assert_allclose(x, np.sort(result.topo[result.ok, t, d]))
    assert fig.layout.xaxis.title.text == "Wiener index at r = 3 Å (gate input)"

    fig = routing.alpha_vs_descriptor_figure(result, "betti1", radius=2.04, layout={"width": 400})
    assert "Betti-1 at r = 2 Å" in fig.layout.xaxis.title.text
    assert fig.layout.width == 400


def test_alpha_vs_descriptor_bad_input(result):
    with pytest.raises(ValueError, match="unknown descriptor"):
        routing.alpha_vs_descriptor_figure(result, "diameter")
    with pytest.raises(ValueError, match="outside the grid"):
        routing.alpha_vs_descriptor_figure(result, radius=9.0)
    bad = dataclasses.replace(result, topo=result.topo[:, :3])
    with pytest.raises(ValueError, match="topo has shape"):
        routing.alpha_vs_descriptor_figure(bad)


# --------------------------------------------------------------------------- matplotlib


def test_alpha_mpl(result):
    from matplotlib.axes import Axes

    ax = routing.alpha_mpl(result, 1)
    assert isinstance(ax, Axes)
    assert len(ax.patches) == len(CUTOFFS)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], result.alpha[1])
    colors = [matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches]
    assert colors == COLORS
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS


def test_routing_map_mpl(result):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    out = routing.routing_map_mpl(result, sort_by="dominant", ax=ax)
    assert out is ax
    assert len(ax.images) == 1
    order = routing.routing_order(result, "dominant")
    np.testing.assert_allclose(ax.images[0].get_array(), result.alpha[order])
    assert len(ax.figure.axes) == 2  # the map and its colorbar


def test_single_molecule_result():
    res = make_result([benzene()])
    fig = routing.routing_map(res)
    assert np.asarray(fig.data[0].z).shape == (1, 5)
    fig = routing.alpha_vs_size_figure(res)
    assert "undefined" in fig.layout.title.text


def test_waterfall_mpl_floats_each_step_from_the_running_sum(result):
    ax = routing.contribution_waterfall_mpl(result, 0)
    bars = ax.patches
    chosen = np.flatnonzero(result.alpha[0] > 0)
    assert len(bars) == len(chosen) + 2
    steps = result.contributions_from_baseline()[0, chosen, 0]
    base = result.baseline[0]
    assert bars[0].get_height() == pytest.approx(base)
    running = base
    for bar, step in zip(bars[1:-1], steps, strict=True):
        assert bar.get_y() == pytest.approx(running) and bar.get_height() == pytest.approx(step)
        running += step
    assert bars[-1].get_height() == pytest.approx(result.prediction[0, 0])


def test_usage_and_size_twins_match_the_numbers(result):
    share, mean_alpha = routing.expert_usage(result)
    heights = [b.get_height() for b in routing.expert_usage_mpl(result).patches]
    np.testing.assert_allclose(heights, np.concatenate([share, mean_alpha]))
    ax = routing.alpha_vs_size_mpl(result)
    ok = result.ok
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(points) == ok.sum()
    sizes, cutoffs = result.num_atoms[ok], routing.expected_cutoff(result)[ok]
    expected = {(float(n), float(c)) for n, c in zip(sizes, cutoffs, strict=True)}
    assert {(float(a), float(b)) for a, b in points} == expected


def test_alpha_scatter_legends_sit_below_the_axis_titles(result):
    from test_curves import assert_legend_below_the_axes

    assert_legend_below_the_axes(routing.alpha_vs_size_figure(result))
    assert_legend_below_the_axes(routing.alpha_vs_descriptor_figure(result))
    fig = routing.alpha_vs_size_figure(result, layout={"legend": {"y": 0.1}})
    assert fig.layout.legend.y == 0.1  # overrides still win
