"""SchNet expert (Schütt et al. 2017, https://arxiv.org/abs/1706.08566) on a prebuilt graph.

Built from PyG's continuous-filter interaction block and Gaussian distance expansion; only
the graph construction is replaced (ours, with no neighbour cap).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn.models.schnet import GaussianSmearing, InteractionBlock

from mimoe_core.models._common import MAX_Z, Expert


class SchNetExpert(Expert):
    """SchNet: atom embeddings refined by continuous-filter convolutions.

    Args:
        hidden_channels: atom feature width, default 128.
        num_layers: interaction blocks, default 3 (the paper's expert depth; a standalone
            SchNet uses 6).
        num_filters: filter width, default 128.
        num_rbf: Gaussians in the distance expansion over [0, cutoff], default 50.
        cutoff: radius in Å of the expert's graph, default 5.0.
        pooling: ``"mean"`` (default) or ``"sum"``.
    """

    name = "schnet"

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 3,
        num_filters: int = 128,
        num_rbf: int = 50,
        cutoff: float = 5.0,
        pooling: str = "mean",
    ) -> None:
        super().__init__(hidden_channels, cutoff, pooling)
        self.num_layers = int(num_layers)
        self.num_filters = int(num_filters)
        self.num_rbf = int(num_rbf)
        self.embedding = nn.Embedding(MAX_Z, hidden_channels)
        self.rbf = GaussianSmearing(0.0, self.cutoff, num_rbf)
        self.interactions = nn.ModuleList(
            InteractionBlock(hidden_channels, num_rbf, num_filters, self.cutoff)
            for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_backbone(self) -> None:
        """Re-initialize the message-passing layers (the base class adds the readout)."""
        self.embedding.reset_parameters()
        for block in self.interactions:
            block.reset_parameters()

    def atom_features(
        self, z: Tensor, pos: Tensor, edge_index: Tensor, edge_weight: Tensor, edge_vec: Tensor
    ) -> Tensor:
        """Invariant atom features [num_atoms, hidden_channels] after the interactions."""
        h = self.embedding(z)
        edge_attr = self.rbf(edge_weight)
        for block in self.interactions:
            h = h + block(h, edge_index, edge_weight, edge_attr)
        return h

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"{super().extra_repr()}, num_layers={self.num_layers}, "
            f"num_filters={self.num_filters}, num_rbf={self.num_rbf}"
        )
