from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from molecule_factory import Molecules, moved_and_permuted

from mimoe_core.models import (
    EXPERTS,
    MIMoE,
    bundled_configs,
    create_model,
    expert_class,
    load_balancing_loss,
    load_config,
    top_k_routing,
)

BACKBONES = sorted(EXPERTS)


def small_model(backbone="schnet", **overrides) -> MIMoE:
    config = {
        "backbone": backbone,
        "expert": {"hidden_channels": 16, "num_layers": 2},
        "gate": {"name": "mlp", "hidden_channels": 16},
        **overrides,
    }
    torch.manual_seed(0)
    return create_model(config).double()


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_routing_has_k_nonzeros_summing_to_one(k):
    logits = torch.randn(32, 5)
    r = top_k_routing(logits, k)
    assert (r.alpha > 0).sum(-1).tolist() == [k] * 32
    assert torch.equal(r.selected, r.alpha > 0)
    torch.testing.assert_close(r.alpha.sum(-1), torch.ones(32))
    # the selected experts are the k largest logits
    top = logits.topk(k, dim=-1).indices
    assert torch.equal(r.selected, torch.zeros_like(r.selected).scatter_(-1, top, True))


def test_top_k_routing_ties_and_temperature():
    r = top_k_routing(torch.zeros(1, 4), 2)
    assert r.selected.tolist() == [[True, True, False, False]]
    sharp = top_k_routing(torch.tensor([[1.0, 0.0]]), 2, temperature=0.1).alpha
    soft = top_k_routing(torch.tensor([[1.0, 0.0]]), 2, temperature=10.0).alpha
    assert sharp[0, 0] > 0.99 and 0.5 < soft[0, 0] < 0.53
    with pytest.raises(ValueError, match="top_k"):
        top_k_routing(torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match="temperature"):
        top_k_routing(torch.zeros(2, 3), 1, temperature=0.0)


def test_load_balancing_loss_uniform_vs_collapsed():
    probs = torch.full((8, 4), 0.25)
    spread = torch.eye(4, dtype=torch.bool).repeat(2, 1)
    assert load_balancing_loss(probs, spread).item() == pytest.approx(1.0)
    collapsed_probs = torch.tensor([[1.0, 0, 0, 0]]).repeat(8, 1)
    collapsed = collapsed_probs.bool()
    assert load_balancing_loss(collapsed_probs, collapsed).item() == pytest.approx(4.0)
    assert load_balancing_loss(torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.bool)) == 0


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_gate_gets_a_task_loss_gradient_for_every_k(k, molecules):
    # Task loss only (no balancing term): the gate must still learn, k = 1 included.
    model = small_model(top_k=k, balance_weight=0.0)
    out = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    target = torch.randn_like(out.y)
    torch.nn.functional.mse_loss(out.y, target).backward()
    grads = [p.grad for p in model.gate.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    # alpha is still exact: k non-zeros summing to 1, contributions summing to y.
    assert ((out.alpha != 0).sum(-1) == k).all()
    torch.testing.assert_close(out.alpha.sum(-1), torch.ones(len(out.y), dtype=out.y.dtype))
    torch.testing.assert_close(out.contributions().sum(1), out.y)


def test_top_1_alpha_is_exactly_one_with_the_gradient_of_log_p():
    logits = torch.tensor([[0.3, 1.2, -0.5], [2.0, 0.1, 0.4]], requires_grad=True)
    r = top_k_routing(logits, 1)
    assert r.alpha.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    weights = torch.tensor([[0.0, 1.5, 0.0], [-2.0, 0.0, 0.0]])
    (r.alpha * weights).sum().backward()
    # d/dlogits of sum_b w_b log p_{b, chosen}
    expected = torch.autograd.grad((weights * torch.log_softmax(logits, -1)).sum(), logits)[0]
    torch.testing.assert_close(logits.grad, expected)


# --- load-balancing loss bounds ---------------------------------------------------------------


def _balance(logits: torch.Tensor, k: int) -> float:
    r = top_k_routing(logits, k)
    return load_balancing_loss(r.probs, r.selected).item()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda num: st.tuples(
            st.just(num),
            st.integers(1, num),
            arrays(
                np.float64, st.tuples(st.integers(1, 12), st.just(num)), elements=st.floats(-30, 30)
            ),
        )
    )
)
def test_load_balancing_loss_lies_within_its_proven_bounds(case):
    num, k, logits = case
    value = _balance(torch.from_numpy(logits), k)
    assert 1 / (k * num) - 1e-12 <= value <= num / k + 1e-12
    if k == num:
        assert value == pytest.approx(1.0)


def test_load_balancing_loss_can_be_below_one_and_reaches_k_over_k():
    # The audit's example: probabilities (0.51, 0.49), (0.51, 0.49), (0, 1) with k = 1.
    probs = torch.tensor([[0.51, 0.49], [0.51, 0.49], [0.0, 1.0]])
    selected = torch.tensor([[True, False], [True, False], [False, True]])
    assert load_balancing_loss(probs, selected).item() == pytest.approx(0.8933, abs=1e-4)
    # The documented construction for k = 1: 1 - (K - 1) / (4K).
    for num in (2, 5, 8):
        big = 1 - (num - 1) / (2 * num)
        per_small = round(1000 * (1 - big) / (num - 1))
        rows = [torch.full((num,), 1 / num)] * (1000 - per_small * (num - 1))
        rows += [torch.eye(num)[e] for e in range(1, num) for _ in range(per_small)]
        probs = torch.stack(rows).double()
        selected = torch.zeros_like(probs, dtype=torch.bool)
        selected[torch.arange(len(probs)), torch.sort(-probs, stable=True).indices[:, 0]] = True
        value = load_balancing_loss(probs, selected).item()
        assert value == pytest.approx(1 - (num - 1) / (4 * num), abs=2e-3)
        assert value < 1
    # Upper bound K/k, approached when every molecule puts everything on the same k experts.
    for num, k in ((5, 1), (5, 2), (4, 3)):
        logits = torch.full((16, num), -60.0)
        logits[:, :k] = 0.0
        assert _balance(logits.double(), k) == pytest.approx(num / k, rel=1e-9)


# --- every backbone -------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_alpha_and_additive_contributions(backbone, molecules):
    model = small_model(backbone)
    out = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    num = molecules.num_graphs
    assert out.y.shape == (num, 1)
    assert out.alpha.shape == out.selected.shape == out.logits.shape == (num, 5)
    assert out.expert_predictions.shape == (num, 5, 1)
    assert ((out.alpha > 0).sum(-1) == 2).all()
    torch.testing.assert_close(out.alpha.sum(-1), torch.ones(num, dtype=torch.float64))
    torch.testing.assert_close(out.contributions().sum(1), out.y)
    assert out.aux_loss.ndim == 0
    assert 1 / (2 * 5) - 1e-12 <= out.aux_loss.item() <= 5 / 2 + 1e-12
    # probs is the gate's full softmax, the one the balancing loss reads (under DDP the
    # trainer recomputes the loss from it)
    torch.testing.assert_close(out.probs, torch.softmax(out.logits / model.temperature, -1))
    torch.testing.assert_close(load_balancing_loss(out.probs, out.selected), out.aux_loss)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_invariance_to_rotation_translation_and_atom_order(backbone, molecules):
    model = small_model(backbone).eval()
    ref = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    out = model(*moved_and_permuted(molecules))
    torch.testing.assert_close(out.alpha, ref.alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.y, ref.y, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_batch_equals_single_molecule_calls(backbone, molecules):
    model = small_model(backbone).eval()
    out = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    for b in range(molecules.num_graphs):
        single = model(*molecules.molecule(b))
        torch.testing.assert_close(single.y[0], out.y[b], atol=1e-10, rtol=1e-8)
        torch.testing.assert_close(single.alpha[0], out.alpha[b])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_sparse_dispatch_equals_dense_compute_with_masked_weights(backbone):
    mols = Molecules([6, 11, 5, 9, 13, 8, 7, 10], seed=3)
    model = small_model(backbone, top_k=2).eval()
    # A random gate bias spreads the routing, so experts see different sub-batches.
    with torch.no_grad():
        model.gate.to_logits.bias.copy_(torch.tensor([0.0, 0.3, -0.2, 0.1, 0.2]))
        model.gate.to_logits.weight.mul_(50.0)
    sparse = model(mols.z, mols.pos, mols.batch, mols.topo)
    dense = model(mols.z, mols.pos, mols.batch, mols.topo, compute_all=True)
    counts = sparse.selected.sum(0)
    assert (counts < mols.num_graphs).any(), "routing did not split the batch"
    torch.testing.assert_close(sparse.y, dense.y, atol=1e-10, rtol=1e-8)
    sel = sparse.selected.unsqueeze(-1)
    torch.testing.assert_close(
        sparse.expert_predictions,
        torch.where(sel, dense.expert_predictions, 0.0),
        atol=1e-10,
        rtol=1e-8,
    )


@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradients_reach_gate_and_every_selected_expert(backbone, molecules):
    model = small_model(backbone)
    out = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    (out.y.sum() + out.aux_loss).backward()
    assert model.gate.to_logits.weight.grad.abs().sum() > 0
    used = out.selected.any(0).tolist()
    for e, expert in enumerate(model.experts):
        grads = [p.grad for p in expert.parameters() if p.requires_grad]
        has_grad = any(g is not None and g.abs().sum() > 0 for g in grads)
        assert has_grad == used[e], f"expert {e} used={used[e]} grad={has_grad}"


# --- model variants and configs ------------------------------------------------------------


def test_dense_one_expert_and_plain_variants(molecules):
    args = (molecules.z, molecules.pos, molecules.batch, molecules.topo)
    dense = small_model(variant="dense")(*args)
    assert (dense.alpha > 0).all() and dense.selected.all()

    one = small_model(variant="one_expert", one_expert=3)
    assert one.num_experts == 1 and one.cutoffs == [3.5] and one.gate is None
    out = one(*args)
    assert out.alpha.shape == (molecules.num_graphs, 1) and (out.alpha == 1).all()
    assert out.logits is None and out.probs is None and out.aux_loss.item() == 0.0
    assert len(one.experts[0].interactions) == 2  # shallow expert depth

    plain = small_model(variant="plain")
    assert plain.cutoffs == [5.0] and len(plain.experts[0].interactions) == 6
    plain(molecules.z, molecules.pos, molecules.batch)  # needs no trajectory


def test_transformer_gate_and_noisy_gating(molecules):
    model = small_model(gate={"name": "transformer", "d_model": 16, "noisy": True})
    args = (molecules.z, molecules.pos, molecules.batch, molecules.topo)
    model.eval()
    a, b = model(*args), model(*args)
    assert torch.equal(a.logits, b.logits)  # no noise at evaluation
    model.train()
    c = model(*args)
    assert not torch.equal(a.logits, c.logits)
    assert "TransformerGate" in str(model) and "noisy=True" in str(model)


@pytest.mark.parametrize("name", bundled_configs())
def test_every_bundled_config_builds_and_runs(name):
    mols = Molecules([6, 9], dtype=torch.float32)
    model = create_model(name)
    out = model(mols.z, mols.pos, mols.batch, mols.topo)
    assert out.y.shape == (2, 1) and torch.isfinite(out.y).all()
    assert model.config["backbone"] == load_config(name)["backbone"]


def test_bundled_configs_cover_every_backbone():
    assert sorted(load_config(n)["backbone"] for n in bundled_configs()) == BACKBONES


def test_the_torch_free_backbone_names_are_the_registry_s():
    from mimoe_core import constants

    assert tuple(EXPERTS) == constants.BACKBONES  # the command line offers constants' names
    for name in constants.BACKBONES:
        assert issubclass(expert_class(name), torch.nn.Module)


def test_repr_shows_key_settings():
    text = str(small_model(top_k=3, cutoffs=[2.0, 3.0, 4.0]))
    assert "variant='sparse'" in text and "top_k=3" in text
    assert "cutoffs=[2.0, 3.0, 4.0]" in text and "SchNetExpert" in text
    assert "cutoff=4.0" in text and "MLPGate" in text


def test_forward_batch_reads_a_pyg_batch(molecules):
    from torch_geometric.data import Batch, Data

    data = [Data(z=z, pos=pos, topo=topo) for z, pos, _, topo in map(molecules.molecule, range(4))]
    model = small_model().eval()
    out = model.forward_batch(Batch.from_data_list(data))
    ref = model(molecules.z, molecules.pos, molecules.batch, molecules.topo)
    torch.testing.assert_close(out.y, ref.y)


def test_configs_written_with_the_old_variant_names_still_load():
    # Checkpoints before the rename stored routing "one"/"single" and a "single" section.
    old = {"routing": "single", "single": {"cutoff": 4.5, "num_layers": 2}}
    assert load_config(old)["variant"] == "plain"
    assert load_config(old)["plain"] == {"cutoff": 4.5, "num_layers": 2}
    assert load_config({"routing": "one"})["variant"] == "one_expert"
    assert load_config({"routing": "dense"})["variant"] == "dense"
    assert "routing" not in load_config(old) and "single" not in load_config(old)


# --- bad input ------------------------------------------------------------------------------


def test_config_errors_are_specific():
    with pytest.raises(ValueError, match="unknown config key.*'cutof'"):
        create_model({"cutof": [2.0]})
    with pytest.raises(ValueError, match="unknown backbone 'gcn'.*schnet"):
        create_model({"backbone": "gcn"})
    with pytest.raises(ValueError, match="variant must be one of"):
        create_model({"variant": "fancy"})
    with pytest.raises(ValueError, match="strictly increasing"):
        create_model({"cutoffs": [3.0, 2.0]})
    with pytest.raises(ValueError, match="top_k must be in"):
        create_model({"top_k": 6})
    with pytest.raises(ValueError, match="bad settings for SchNetExpert"):
        create_model({"expert": {"depth": 3}})
    with pytest.raises(ValueError, match="neither a YAML file nor a bundled config"):
        load_config("no_such_config")
    with pytest.raises(ValueError, match="one_expert"):
        create_model({"variant": "one_expert", "one_expert": 9})


def test_forward_errors_are_specific(molecules):
    model = small_model()
    with pytest.raises(ValueError, match="needs the descriptor trajectory"):
        model(molecules.z, molecules.pos, molecules.batch)
    with pytest.raises(ValueError, match=r"topo of shape \[B, 41, 5\]"):
        model(molecules.z, molecules.pos, molecules.batch, molecules.topo[:, :20])
    with pytest.raises(ValueError, match="topo has 3 molecules, the batch 4"):
        model(molecules.z, molecules.pos, molecules.batch, molecules.topo[:3])


# --- load balancing on a synthetic task -----------------------------------------------------


def _train_synthetic(balance_weight: float, steps: int = 60):
    """Top-2 routing from a gate biased to expert 0; target: carbon count / 5."""
    torch.manual_seed(0)
    mols = Molecules([5 + (i % 10) for i in range(48)], dtype=torch.float32, seed=7)
    carbons = torch.zeros(48).index_add_(0, mols.batch, (mols.z == 6).float())
    target = carbons[:, None] / 5
    model = create_model(
        {
            "expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8, "num_rbf": 10},
            "gate": {"name": "mlp", "hidden_channels": 16},
            "top_k": 2,
        }
    )
    with torch.no_grad():
        model.gate.to_logits.bias.copy_(torch.tensor([2.0, 0, 0, 0, 0]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        out = model(mols.z, mols.pos, mols.batch, mols.topo)
        loss = torch.nn.functional.mse_loss(out.y, target) + balance_weight * out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = model(mols.z, mols.pos, mols.batch, mols.topo)
    top1_share = torch.bincount(out.alpha.argmax(-1), minlength=5).float() / 48
    return top1_share, out.selected.float().mean(0)


def test_balancing_loss_keeps_expert_usage_spread():
    collapsed_share, _ = _train_synthetic(balance_weight=0.0)
    assert collapsed_share.max() > 0.8  # without it, one expert leads for most molecules
    weak_share, _ = _train_synthetic(balance_weight=0.01)  # the former default: too weak
    assert weak_share.max() > 0.8
    share, usage = _train_synthetic(balance_weight=load_config()["balance_weight"])
    assert share.max() <= 0.8, share
    assert usage.max() <= 0.8, usage
    assert (usage > 0).sum() >= 3  # at least three experts in use


# Every backbone, and those that take learnable cutoffs with them (upper bound 4.5 Å).
LEARNABLE = {"learnable_cutoffs": {"enabled": True, "upper": 4.5}}
AUTOCAST_CASES = [(b, {}) for b in BACKBONES] + [
    (b, LEARNABLE) for b in BACKBONES if expert_class(b).accepts_edge_envelope
]


@pytest.mark.parametrize(("backbone", "overrides"), AUTOCAST_CASES)
def test_runs_under_bfloat16_autocast(backbone, overrides):
    # The trainer's mixed precision on CUDA; CPU autocast exercises the same dtype paths.
    mols = Molecules([6, 9, 7], dtype=torch.float32)
    model = small_model(backbone, **overrides).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(mols.z, mols.pos, mols.batch, mols.topo)
    assert torch.isfinite(out.y).all()
    (out.y.float().sum() + out.aux_loss).backward()
    if model.learnable_cutoffs is not None:
        assert torch.isfinite(model.learnable_cutoffs.raw_gaps.grad).all()


@pytest.mark.parametrize(
    "overrides, built",
    [
        ({}, 5),
        ({"variant": "plain"}, 1),
        ({"variant": "one_expert"}, 1),
        ({"learnable_cutoffs": {"enabled": True}}, 5),
        ({"shared_trunk": {"enabled": True}}, 6),  # the trunk and 5 branches
        ({"learnable_cutoffs": {"enabled": True}, "shared_trunk": {"enabled": True}}, 6),
    ],
)
def test_create_model_builds_each_module_once(overrides, built, monkeypatch):
    # A module built and thrown away would still draw from the seeded generator.
    from mimoe_core.models.schnet import SchNetExpert

    calls = []
    original = SchNetExpert.__init__

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("role", "whole"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(SchNetExpert, "__init__", counting)
    create_model({"expert": {"hidden_channels": 8, "num_layers": 3}, **overrides})
    assert len(calls) == built
