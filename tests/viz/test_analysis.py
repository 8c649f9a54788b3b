import dataclasses

import numpy as np
import pytest
from conftest import CUTOFFS, benzene, chain, make_result, water

from mimoe_viz import analysis, routing
from mimoe_viz._style import expert_colors, expert_labels

pytest.importorskip("plotly")

LABELS = expert_labels(CUTOFFS)
COLORS = expert_colors(len(CUTOFFS))


def _two_molecules(preds, alpha):
    """A regression result over water and benzene with given expert predictions and alpha."""
    r = make_result([water(), benzene()])
    alpha = np.asarray(alpha, dtype=float)
    experts = np.where(alpha[..., None] > 0, np.asarray(preds, dtype=float)[..., None], np.nan)
    prediction = np.nansum(alpha[..., None] * np.nan_to_num(experts), axis=1)
    return dataclasses.replace(r, alpha=alpha, expert_predictions=experts, prediction=prediction,
                               labels=prediction + np.array([[0.5], [-2.0]]))  # fmt: skip


# --------------------------------------------------------------------------- descriptor_at


def test_descriptor_at_reads_the_grid(result):
    values, r = analysis.descriptor_at(result, "wiener", radius=3.04)
    t = int(np.argmin(np.abs(np.asarray(result.radii) - 3.04)))
    assert r == pytest.approx(result.radii[t])
    ok = result.ok
    np.testing.assert_allclose(
        values[ok], result.topo[ok, t, result.descriptor_names.index("wiener")]
    )
    assert np.isnan(values[5])
    _, r_default = analysis.descriptor_at(result, "betti0")
    assert r_default == pytest.approx(3.0)  # the middle of the five cutoffs


@pytest.mark.parametrize(
    "kwargs", [{"descriptor": "nope"}, {"descriptor": "wiener", "radius": 9.0}]
)
def test_descriptor_at_rejects_bad_input(result, kwargs):
    with pytest.raises(ValueError, match="unknown descriptor|outside the grid"):
        analysis.descriptor_at(result, **kwargs)


# --------------------------------------------------------------------------- profiles


def test_expert_profiles_match_numpy(result):
    table = analysis.expert_profiles(result)
    assert list(table.index) == LABELS
    ok = np.flatnonzero(result.ok)
    dom = routing.dominant_expert(result)
    share, mean_alpha = routing.expert_usage(result)
    np.testing.assert_allclose(table["selected"], share)
    np.testing.assert_allclose(table["mean_alpha"], mean_alpha)
    assert table["mean_alpha"].sum() == pytest.approx(1.0)
    assert table["dominant"].sum() == ok.size
    np.testing.assert_allclose(table["cutoff"], CUTOFFS)
    wiener, _ = analysis.descriptor_at(result, "wiener")
    for e in range(len(CUTOFFS)):
        members = ok[dom[ok] == e]
        row = table.iloc[e]
        if members.size == 0:
            assert row["dominant"] == 0 and np.isnan(row["atoms_mean"]) and np.isnan(row["wiener"])
            continue
        assert row["atoms_mean"] == pytest.approx(result.num_atoms[members].mean())
        assert row["atoms_median"] == pytest.approx(np.median(result.num_atoms[members]))
        assert row["wiener"] == pytest.approx(wiener[members].mean())
        assert row["label_mean"] == pytest.approx(result.labels[members, 0].mean())
        assert row["prediction_mean"] == pytest.approx(result.prediction[members, 0].mean())
    assert table.attrs["radius"] == pytest.approx(3.0)


def test_expert_profiles_without_labels_or_structures(result):
    bare = dataclasses.replace(result, labels=None, atomic_numbers=[], positions=[])
    table = analysis.expert_profiles(bare)
    assert table["label_mean"].isna().all() and table["atoms_mean"].isna().all()
    assert table["dominant"].sum() == result.ok.sum()


@pytest.mark.parametrize("quantity", ["atoms", "label", "prediction", "wiener", "betti1"])
def test_expert_profile_figure_boxes_hold_the_dominated_molecules(result, quantity):
    fig = analysis.expert_profile_figure(result, quantity)
    ok = np.flatnonzero(result.ok)
    dom = routing.dominant_expert(result)
    present = [e for e in range(len(CUTOFFS)) if np.any(dom[ok] == e)]
    assert [tr.type for tr in fig.data] == ["box"] * len(present)
    assert [tr.name for tr in fig.data] == [LABELS[e] for e in present]
    assert [tr.marker.color for tr in fig.data] == [COLORS[e] for e in present]
    assert sum(len(tr.y) for tr in fig.data) == ok.size
    if quantity == "atoms":
        for tr, e in zip(fig.data, present, strict=True):
            np.testing.assert_array_equal(tr.y, result.num_atoms[ok[dom[ok] == e]])


def test_expert_profile_figure_errors(result):
    with pytest.raises(ValueError, match="quantity must be one of"):
        analysis.expert_profile_figure(result, "colour")
    with pytest.raises(ValueError, match="labels"):
        analysis.expert_profile_figure(dataclasses.replace(result, labels=None), "label")
    with pytest.raises(ValueError, match="structures"):
        analysis.expert_profile_figure(dataclasses.replace(result, atomic_numbers=[]), "atoms")


# --------------------------------------------------------------------------- disagreement


def test_expert_disagreement_known_answer():
    r = _two_molecules(
        preds=[[1.0, 3.0, 0, 0, 0], [0, 0, -2.0, 0, 4.0]],
        alpha=[[0.25, 0.75, 0, 0, 0], [0, 0, 0.5, 0, 0.5]],
    )
    table = analysis.expert_disagreement(r)
    assert list(table["index"]) == [1, 0]  # largest spread first
    np.testing.assert_allclose(table["spread"], [6.0, 2.0])
    # k = 2: weighted std = sqrt(a1 a2) * spread
    np.testing.assert_allclose(table["weighted_std"], [0.5 * 6.0, np.sqrt(0.25 * 0.75) * 2.0])
    np.testing.assert_allclose(table["prediction"], [1.0, 2.5])
    np.testing.assert_allclose(table["abs_error"], [2.0, 0.5])
    assert list(table["k"]) == [2, 2]
    assert table["experts"][0] == f"{LABELS[2]}, {LABELS[4]}"
    assert list(table["atoms"]) == [12, 3]


def test_expert_disagreement_skips_and_single_expert(result):
    table = analysis.expert_disagreement(result)
    assert len(table) == result.ok.sum() and 5 not in set(table["index"])
    assert np.all(np.diff(table["spread"]) <= 0)
    one = make_result([water(), chain(4)], top_k=1)
    table = analysis.expert_disagreement(one)
    assert (table["spread"] == 0).all() and (table["weighted_std"] == 0).all()


def test_expert_disagreement_classification_is_in_logits(classification_result):
    r = classification_result
    table = analysis.expert_disagreement(r)
    m = int(table["index"][0])
    sel = r.alpha[m] > 0
    logits = r.expert_predictions[m, sel, 0]
    assert table["spread"][0] == pytest.approx(logits.max() - logits.min())
    assert table["prediction"][0] == pytest.approx(r.prediction[m, 0])


def test_disagreement_figure_rows_and_traces():
    r = _two_molecules(
        preds=[[1.0, 3.0, 0, 0, 0], [0, 0, -2.0, 0, 4.0]],
        alpha=[[0.25, 0.75, 0, 0, 0], [0, 0, 0.5, 0, 0.5]],
    )
    fig = analysis.disagreement_figure(r, top=5)
    names = [tr.name for tr in fig.data]
    assert names == ["range", LABELS[0], LABELS[1], LABELS[2], LABELS[4],
                     "mixture (prediction)", "label"]  # fmt: skip
    mixture = fig.data[names.index("mixture (prediction)")]
    assert list(mixture.y) == ["1 · mol1 (6)", "2 · mol0 (2)"]
    np.testing.assert_allclose(mixture.x, [1.0, 2.5])
    e5 = fig.data[names.index(LABELS[4])]
    assert list(e5.x) == [4.0] and list(e5.y) == ["1 · mol1 (6)"]
    assert e5.marker.color == COLORS[4]
    np.testing.assert_allclose(fig.data[names.index("label")].x, [-1.0, 3.0])
    assert fig.layout.yaxis.autorange == "reversed"


def test_disagreement_figure_top_and_classification(result, classification_result):
    fig = analysis.disagreement_figure(result, top=3)
    assert len(fig.data[-1].y) == 3
    fig = analysis.disagreement_figure(classification_result, top=4)
    names = [tr.name for tr in fig.data]
    assert "label" not in names and "logit" in fig.layout.xaxis.title.text
    table = analysis.expert_disagreement(classification_result).head(4)
    mixture = fig.data[names.index("mixture (prediction)")]
    r = classification_result
    logit = np.log(r.prediction[table["index"], 0] / (1 - r.prediction[table["index"], 0]))
    np.testing.assert_allclose(mixture.x, logit, rtol=1e-6)
    with pytest.raises(ValueError, match="top"):
        analysis.disagreement_figure(result, top=0)


def test_disagreement_error_figure(result):
    fig = analysis.disagreement_error_figure(result)
    assert sum(len(tr.x) for tr in fig.data) == result.ok.sum()
    table = analysis.expert_disagreement(result)
    xs = np.sort(np.concatenate([tr.x for tr in fig.data]))
    np.testing.assert_allclose(xs, np.sort(table["spread"]))
    assert fig.layout.meta["n"] == result.ok.sum()
    assert "Spearman" in fig.layout.title.text
    with pytest.raises(ValueError, match="labels"):
        analysis.disagreement_error_figure(dataclasses.replace(result, labels=None))


def test_all_skipped_raises():
    skipped = make_result([water(), chain(3)], skipped=(0, 1))
    for fn in (analysis.expert_profiles, analysis.expert_disagreement):
        with pytest.raises(ValueError, match="no 'ok' entries"):
            fn(skipped)
