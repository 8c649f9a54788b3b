"""Learnable cutoffs (issue 18, Q1): ordered, bounded, reached by gradients, exact dispatch."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from molecule_factory import (
    Molecules,
    assert_sparse_dispatch_equals_computing_every_expert,
    moved_and_permuted,
)

from mimoe_core.models import create_model, load_config
from mimoe_core.models.learnable_cutoffs import LearnableCutoffs, edge_ramp
from mimoe_core.models.radius_graph import radius_graph

# The backbones whose messages take edge weights; ViSNet's PyG layers do not.
LEARNABLE_BACKBONES = ["dimenet++", "et", "painn", "schnet"]
# A low upper bound keeps the test graphs (and DimeNet++'s triplets) small.
SPEC = {"enabled": True, "lower": 1.0, "upper": 4.5, "ramp": 0.5}


def learnable_model(backbone: str = "schnet", **overrides):
    config = {
        "backbone": backbone,
        "expert": {"hidden_channels": 8, "num_layers": 1},
        "gate": {"name": "mlp", "hidden_channels": 16},
        "learnable_cutoffs": SPEC,
        "cutoffs": [2.0, 3.0, 4.0],  # K = 3 keeps DimeNet++ (slow to build and run) quick
        **overrides,
    }
    torch.manual_seed(0)
    return create_model(config).double()


# --- the envelope and the parametrization -----------------------------------------------------


def test_edge_ramp_is_one_inside_zero_beyond_and_smooth_at_both_ends():
    c = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    d = torch.tensor([0.0, 2.4, 2.5, 2.75, 3.0, 3.2], dtype=torch.float64)
    w = edge_ramp(d, c, 0.5)
    torch.testing.assert_close(w.detach(), torch.tensor([1, 1, 1, 0.5, 0, 0], dtype=torch.float64))
    # zero slope where the ramp meets 1 and 0: the gradient in c is continuous
    (grad,) = torch.autograd.grad(edge_ramp(d, c, 0.5).sum(), c)
    expected = 0.5 * math.pi / 0.5 * math.sin(math.pi * 0.5)  # only d = 2.75 is inside
    assert grad.item() == pytest.approx(expected)
    for at in (2.5, 3.0):  # the ends of the ramp
        ends = torch.tensor([at - 1e-7, at + 1e-7], dtype=torch.float64)
        (g,) = torch.autograd.grad(edge_ramp(ends, c, 0.5).sum(), c)
        assert abs(g.item()) < 1e-5


def test_learnable_cutoffs_start_at_the_configured_values():
    cutoffs = LearnableCutoffs([2.0, 2.5, 3.0, 3.5, 4.0], lower=1.0, upper=6.0, ramp=0.5)
    assert cutoffs.num_experts == 5
    assert cutoffs.values() == pytest.approx([2.0, 2.5, 3.0, 3.5, 4.0], abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-30.0, 30.0), min_size=6, max_size=6))
def test_every_parameter_value_gives_ordered_cutoffs_inside_the_bounds(raw):
    cutoffs = LearnableCutoffs([2.0, 2.5, 3.0, 3.5, 4.0], lower=1.0, upper=6.0, ramp=0.5).double()
    with torch.no_grad():
        cutoffs.raw_gaps.copy_(torch.tensor(raw, dtype=torch.float64))
    values = cutoffs()  # the module's own output: nothing clamps it afterwards
    assert torch.isfinite(values).all()
    assert (values > 1.0).all() and (values < 6.0).all()
    assert (torch.diff(values) > 0).all() or _equal_only_by_rounding(raw)


def _equal_only_by_rounding(raw) -> bool:
    # softplus(-30) ~ 1e-13: gaps that small can round to equal cutoffs in float64 only when
    # the parameters are at the very bottom of the range drawn.
    return min(raw) < -25


@pytest.mark.parametrize(
    ("initial", "lower", "upper", "ramp", "message"),
    [
        ([2.0, 3.0], 2.0, 6.0, 0.5, "strictly inside"),
        ([2.0, 6.5], 1.0, 6.0, 0.5, "strictly inside"),
        ([3.0, 2.0], 1.0, 6.0, 0.5, "strictly increasing"),
        ([2.0, 3.0], 1.0, 6.0, 0.0, "ramp must be > 0"),
        ([2.0, 3.0], 5.0, 4.0, 0.5, "0 < lower < upper"),
        ([2.0, 3.0], 1.0, float("inf"), 0.5, "finite"),
    ],
)
def test_bad_learnable_cutoffs_are_refused(initial, lower, upper, ramp, message):
    with pytest.raises(ValueError, match=message):
        LearnableCutoffs(initial, lower=lower, upper=upper, ramp=ramp)


# --- the mixture with learnable cutoffs -----------------------------------------------------


@pytest.mark.parametrize("backbone", LEARNABLE_BACKBONES)
def test_gradients_reach_the_cutoffs_and_match_finite_differences(backbone):
    mols = Molecules([6, 5, 7], seed=2)
    model = learnable_model(backbone, top_k=3)  # every expert runs: every cutoff matters
    raw = model.learnable_cutoffs.raw_gaps

    def loss() -> torch.Tensor:
        return model(mols.z, mols.pos, mols.batch, mols.topo).y.square().sum()

    (grad,) = torch.autograd.grad(loss(), raw)
    assert (grad != 0).any()
    numeric = torch.zeros_like(grad)
    for i in range(raw.numel()):
        with torch.no_grad():
            raw[i] += 1e-6
            up = loss()
            raw[i] -= 2e-6
            down = loss()
            raw[i] += 1e-6
        numeric[i] = (up - down) / 2e-6
    torch.testing.assert_close(grad, numeric, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("backbone", LEARNABLE_BACKBONES)
def test_edges_at_or_beyond_a_cutoff_change_nothing(backbone):
    """The expert on every edge up to the bound equals the expert on the edges it keeps."""
    mols = Molecules([8, 9], seed=5)
    model = learnable_model(backbone)
    full = radius_graph(mols.pos, mols.batch, model.search_radius)
    c = model.learnable_cutoffs()[1]
    weights = edge_ramp(full.edge_weight, c, model.learnable_cutoffs.ramp)
    keep = full.edge_weight < c
    assert (~keep).sum() > 0 and keep.sum() > 0
    expert = model.experts[1]
    every = expert(mols.z, mols.pos, *full, mols.batch, edge_envelope=weights)
    kept = (full.edge_index[:, keep], full.edge_weight[keep], full.edge_vec[keep])
    fewer = expert(mols.z, mols.pos, *kept, mols.batch, edge_envelope=weights[keep])
    torch.testing.assert_close(every, fewer, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("backbone", LEARNABLE_BACKBONES)
def test_sparse_dispatch_equals_computing_every_expert(backbone):
    assert_sparse_dispatch_equals_computing_every_expert(learnable_model(backbone, top_k=1))


@pytest.mark.parametrize("backbone", LEARNABLE_BACKBONES)
def test_learnable_model_is_invariant_to_rotation_and_atom_order(backbone):
    molecules = Molecules([5, 8, 6])
    model = learnable_model(backbone).eval()
    ref = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    out = model(*moved_and_permuted(molecules, shift=(1.0, 2.0, -3.0)))
    torch.testing.assert_close(out.y, ref.y, atol=1e-6, rtol=0)


def test_a_moved_cutoff_changes_which_edges_an_expert_reads():
    mols = Molecules([10, 8], seed=4)
    model = learnable_model(top_k=3).eval()
    before = model(mols.z, mols.pos, mols.batch, mols.topo).expert_predictions
    with torch.no_grad():  # widen the first gap: every cutoff moves out
        model.learnable_cutoffs.raw_gaps[0] += 1.0
    assert model.cutoffs[0] > 2.3
    after = model(mols.z, mols.pos, mols.batch, mols.topo).expert_predictions
    assert not torch.allclose(before, after)


def test_state_dict_round_trip_keeps_the_learned_cutoffs(molecules):
    model = learnable_model().eval()
    with torch.no_grad():
        model.learnable_cutoffs.raw_gaps.add_(torch.linspace(-0.5, 0.5, 4, dtype=torch.float64))
    again = create_model(model.config).double().eval()
    assert again.cutoffs != model.cutoffs
    again.load_state_dict(model.state_dict())
    assert again.cutoffs == model.cutoffs
    args = (molecules.z, molecules.pos, molecules.batch, molecules.topo)
    torch.testing.assert_close(again(*args).y, model(*args).y)
    assert "(learnable)" in repr(model)


def test_configs_without_the_key_have_fixed_cutoffs():
    config = load_config({"backbone": "painn"})
    assert config["learnable_cutoffs"]["enabled"] is False
    model = create_model({"expert": {"hidden_channels": 8, "num_layers": 1}})
    assert model.learnable_cutoffs is None and model.search_radius == 4.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backbone": "visnet"}, "not available for the visnet backbone"),
        ({"variant": "plain"}, "need a routed variant"),
        ({"variant": "one_expert"}, "need a routed variant"),
        ({"learnable_cutoffs": {**SPEC, "upper": 3.0}}, "strictly inside"),
        ({"learnable_cutoffs": {**SPEC, "uper": 7.0}}, "unknown learnable_cutoffs key"),
        ({"learnable_cutoffs": {**SPEC, "enabled": "yes"}}, "true or false"),
        ({"learnable_cutoffs": {**SPEC, "ramp": "wide"}}, "must be numbers"),
    ],
)
def test_config_errors_name_the_problem(overrides, message):
    config = {"learnable_cutoffs": SPEC, **overrides}
    with pytest.raises(ValueError, match=message):
        create_model(config)
