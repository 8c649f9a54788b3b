"""Tiny random molecules for model tests (PyG generate_data / torchmd-net example batch)."""

from __future__ import annotations

import numpy as np
import torch

from mimoe_core.topology import descriptor_trajectories


class Molecules:
    """A batch of random molecules: z, pos, batch, topo (descriptor trajectories)."""

    def __init__(self, sizes, dtype=torch.float64, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.sizes = list(sizes)
        n = sum(self.sizes)
        elements = torch.tensor([1, 6, 7, 8, 9])
        self.z = elements[torch.randint(0, 5, (n,), generator=gen)]
        self.pos = (torch.randn(n, 3, generator=gen, dtype=torch.float64) * 1.5).to(dtype)
        self.batch = torch.repeat_interleave(torch.arange(len(self.sizes)), torch.tensor(sizes))
        self.topo = topo_of(self.pos, self.batch)

    @property
    def num_graphs(self) -> int:
        return len(self.sizes)

    def molecule(self, b):
        """(z, pos, batch, topo) of molecule b alone."""
        mask = self.batch == b
        return (
            self.z[mask],
            self.pos[mask],
            torch.zeros(int(mask.sum()), dtype=torch.long),
            (self.topo[b : b + 1]),
        )


def topo_of(pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Normalized descriptor trajectories [B, 41, 5] of a batch, in pos's dtype."""
    num = int(batch.max()) + 1
    clouds = [pos[batch == b].detach().double().numpy() for b in range(num)]
    traj = descriptor_trajectories(clouds, dtype=np.float64)
    return torch.from_numpy(traj).to(pos.dtype)


def random_rotation(seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def moved_and_permuted(molecules: Molecules, shift=(3.0, -1.0, 7.5)):
    """(z, pos, batch, topo) of ``molecules`` rotated, translated and with the atoms of each
    molecule in a random order (the batch vector stays sorted): an invariant model must give
    the same output for them."""
    pos = molecules.pos @ random_rotation().T + torch.tensor(shift, dtype=molecules.pos.dtype)
    perm = torch.cat(
        [
            torch.nonzero(molecules.batch == b).flatten()[torch.randperm(n)]
            for b, n in enumerate(molecules.sizes)
        ]
    )
    z, pos, batch = molecules.z[perm], pos[perm], molecules.batch[perm]
    return z, pos, batch, topo_of(pos, batch)


def assert_sparse_dispatch_equals_computing_every_expert(model, seed: int = 3) -> None:
    """A 3-expert model, its gate pushed to split a batch: sparse dispatch gives what
    running every expert on every molecule gives (the same routing weights)."""
    mols = Molecules([6, 9, 5, 7, 8, 6], seed=seed)
    model = model.eval()
    with torch.no_grad():
        model.gate.to_logits.bias.copy_(torch.tensor([0.0, 0.3, -0.2]))
        model.gate.to_logits.weight.mul_(50.0)
    sparse = model(mols.z, mols.pos, mols.batch, mols.topo)
    dense = model(mols.z, mols.pos, mols.batch, mols.topo, compute_all=True)
    assert (sparse.selected.sum(0) < mols.num_graphs).any(), "routing did not split the batch"
    torch.testing.assert_close(sparse.y, dense.y, atol=1e-10, rtol=1e-8)
