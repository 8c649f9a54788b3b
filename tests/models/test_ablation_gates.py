"""The ablation gates: size only (reads the atom count) and random (a hash of the molecule)."""

from __future__ import annotations

import pytest
import torch
from molecule_factory import Molecules

from mimoe_core.models import RandomGate, SizeGate, create_model


def _model(gate: str, top_k: int = 2):
    torch.manual_seed(0)
    config = {"expert": {"hidden_channels": 16, "num_layers": 2}, "gate": {"name": gate},
              "top_k": top_k}  # fmt: skip
    return create_model(config).double().eval()


def test_size_gate_routes_molecules_of_one_size_alike_whatever_their_shape():
    mols = Molecules([7, 7, 7, 12, 12, 5], seed=4)
    out = _model("size").forward(mols.z, mols.pos, mols.batch, mols.topo)
    assert not torch.equal(mols.topo[0], mols.topo[1])  # different shapes ...
    torch.testing.assert_close(out.logits[0], out.logits[1])  # ... same routing
    torch.testing.assert_close(out.logits[0], out.logits[2])
    torch.testing.assert_close(out.logits[3], out.logits[4])
    assert not torch.allclose(out.logits[0], out.logits[3])


def test_size_gate_needs_the_atom_counts():
    gate = SizeGate(num_experts=5)
    with pytest.raises(ValueError, match="number of atoms"):
        gate(torch.zeros(2, 41, 5))


def test_random_gate_is_a_fixed_function_of_the_molecule_not_of_its_batch():
    mols = Molecules([6, 11, 5, 9, 13, 8], seed=3)
    model = _model("random")
    together = model.forward(mols.z, mols.pos, mols.batch, mols.topo)
    for b in range(mols.num_graphs):
        alone = model.forward(*mols.molecule(b))
        assert torch.equal(alone.selected[0], together.selected[b])
    model.train()  # no noise, no dropout: training routes as prediction does
    again = model.forward(mols.z, mols.pos, mols.batch, mols.topo)
    assert torch.equal(again.selected, together.selected)


def test_random_gate_gives_weight_one_over_k_and_learns_nothing():
    gate = RandomGate(num_experts=5)
    assert sum(p.numel() for p in gate.parameters()) == 0
    out = _model("random", top_k=2).forward(*Molecules([6, 9, 4], seed=1).molecule(0))
    chosen = out.alpha[out.selected]
    torch.testing.assert_close(chosen, torch.full_like(chosen, 0.5), atol=1e-3, rtol=0)


def test_random_gate_spreads_molecules_over_the_experts_regardless_of_size():
    gen = torch.Generator().manual_seed(0)
    topo = torch.randint(0, 1001, (4000, 41, 5), generator=gen) / 1000  # on the hash's grid
    logits = RandomGate(num_experts=5)(topo)
    top = logits.topk(2, dim=-1).indices
    share = torch.bincount(top.flatten(), minlength=5).double() / top.shape[0]
    # each expert takes 2/5 of the molecules; 4000 draws put the share within +-0.04
    assert torch.all((share - 0.4).abs() < 0.04), share
    # round-off far below the 1e-3 quantization step does not move a molecule
    assert torch.equal(RandomGate(num_experts=5)(topo + 1e-7).topk(2, -1).indices, top)
    # another seed is another hash
    other = RandomGate(seed=1, num_experts=5)(topo).topk(2, -1).indices
    assert not torch.equal(other, top)
