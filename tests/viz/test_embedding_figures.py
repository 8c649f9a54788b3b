"""The data set map: embeddings projected to 2D and coloured by dominant expert."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CUTOFFS, row_fields
from import_guard import assert_imports_without
from sklearn.decomposition import PCA

from mimoe_core.results import EmbeddingResult
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES
from mimoe_viz._style import expert_colors, expert_labels
from mimoe_viz.embedding_figures import dataset_map_figure, project_embedding


def make_embedding(
    num: int = 20, hidden: int = 6, skipped: tuple[int, ...] = (4,), seed: int = 0,
    never: tuple[int, ...] = (4,),
) -> EmbeddingResult:  # fmt: skip
    """Top-2 routing over K = 5 experts; experts in ``never`` are never dominant."""
    rng = np.random.default_rng(seed)
    k = len(CUTOFFS)
    alpha = np.zeros((num, k))
    dominant = [e for e in range(k) if e not in never]
    for m in range(num):
        top = dominant[m % len(dominant)]
        other = rng.choice([e for e in range(k) if e != top])
        alpha[m, top], alpha[m, other] = 0.7, 0.3
    experts = np.where(alpha[..., None] > 0, rng.normal(size=(num, k, hidden)), np.nan)
    mixture = np.nansum(alpha[..., None] * experts, axis=1)
    gate_input = rng.random((num, len(DEFAULT_RADII), len(DESCRIPTOR_NAMES)))
    for m in skipped:
        alpha[m] = experts[m] = mixture[m] = gate_input[m] = np.nan
    return EmbeddingResult(
        **row_fields(["C" * (m + 1) for m in range(num)], skipped),
        mixture=mixture,
        experts=experts,
        alpha=alpha,
        gate_input=gate_input,
        cutoffs=list(CUTOFFS),
        radii=[float(r) for r in DEFAULT_RADII],
        descriptor_names=list(DESCRIPTOR_NAMES),
    )


@pytest.fixture
def embedding() -> EmbeddingResult:
    return make_embedding()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_one_trace_per_dominant_expert_and_one_point_per_ok_row(embedding, method):
    fig = dataset_map_figure(embedding, method=method)
    labels, colors = expert_labels(CUTOFFS), expert_colors(len(CUTOFFS))
    assert [t.name for t in fig.data] == [f"dominant {lab}" for lab in labels[:4]]  # E5 never
    assert [t.marker.color for t in fig.data] == colors[:4]
    assert sum(len(t.x) for t in fig.data) == int(embedding.ok.sum()) == 19
    # Every ok molecule appears once, in the trace of its dominant expert, with its SMILES.
    hovered = [h for t in fig.data for h in t.hovertext]
    ok = np.flatnonzero(embedding.ok)
    assert sorted(h.split("<br>")[1] for h in hovered) == sorted(embedding.smiles[m] for m in ok)
    for t, e in zip(fig.data, range(4), strict=True):
        smiles = {h.split("<br>")[1] for h in t.hovertext}
        assert smiles == {embedding.smiles[m] for m in ok if np.argmax(embedding.alpha[m]) == e}
    assert fig.layout.meta["method"] == method and fig.layout.meta["n_points"] == 19


def test_pca_coordinates_and_explained_variance_are_scikit_learns(embedding):
    fig = dataset_map_figure(embedding, method="pca")
    ok = embedding.ok
    pca = PCA(n_components=2, random_state=0)
    expected = pca.fit_transform(embedding.mixture[ok])
    np.testing.assert_allclose(fig.layout.meta["explained_variance_ratio"],
                               pca.explained_variance_ratio_)  # fmt: skip
    indices, coords, info = project_embedding(embedding, "pca")
    np.testing.assert_array_equal(indices, np.flatnonzero(ok))
    np.testing.assert_allclose(coords, expected)
    # The figure's points are those coordinates, grouped by dominant expert.
    shown = np.concatenate([np.column_stack([t.x, t.y]) for t in fig.data])
    np.testing.assert_allclose(np.sort(shown, axis=0), np.sort(expected, axis=0))
    assert "PC1" in fig.layout.xaxis.title.text and "%" in fig.layout.xaxis.title.text


def test_tsne_is_deterministic_for_a_seed_and_clamps_the_perplexity():
    small = make_embedding(num=6, skipped=(), never=())
    first = project_embedding(small, "tsne", seed=3)
    second = project_embedding(small, "tsne", seed=3)
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2]["perplexity"] == 5.0  # n - 1 for 6 molecules
    assert dataset_map_figure(small, method="tsne").layout.meta["perplexity"] == 5.0
    assert project_embedding(make_embedding(num=40), "tsne")[2]["perplexity"] == 30.0


def test_color_by_expected_cutoff_is_one_continuous_trace(embedding):
    fig = dataset_map_figure(embedding, color_by="expected_cutoff")
    assert len(fig.data) == 1 and len(fig.data[0].x) == 19
    expected = embedding.alpha[embedding.ok] @ np.asarray(CUTOFFS)
    np.testing.assert_allclose(fig.data[0].marker.color, expected)


def test_bad_arguments_and_empty_results_raise(embedding):
    with pytest.raises(ValueError, match="method must be one of"):
        dataset_map_figure(embedding, method="umap")
    with pytest.raises(ValueError, match="color_by must be one of"):
        dataset_map_figure(embedding, color_by="size")
    empty = make_embedding(num=3, skipped=(0, 1, 2))
    with pytest.raises(ValueError, match="no entry is ok"):
        dataset_map_figure(empty)
    with pytest.raises(ValueError, match="at least 2"):
        project_embedding(make_embedding(num=2, skipped=(0,)), "tsne")


def test_a_single_molecule_still_maps_with_pca():
    fig = dataset_map_figure(make_embedding(num=2, skipped=(0,)))
    assert sum(len(t.x) for t in fig.data) == 1


def test_layout_overrides_apply(embedding):
    fig = dataset_map_figure(embedding, layout={"title": "mine", "height": 333})
    assert fig.layout.title.text == "mine" and fig.layout.height == 333
    assert fig.layout.meta["method"] == "pca"  # the projection numbers stay


def test_the_module_imports_without_torch():
    forbidden = ("torch", "mimoe_core.models", "mimoe_core.training", "mimoe_core.inference",
                 "mimoe_core.trained")  # fmt: skip
    assert_imports_without("mimoe_viz.embedding_figures", forbidden)
