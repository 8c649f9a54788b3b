"""Conformer ensembles at training and prediction: which conformer a molecule shows.

A molecule featurized with ``keep_conformers = M > 1`` carries its M conformers
(``keys.CONF_POS`` [N, M, 3]) and their descriptor trajectories (``keys.CONF_TOPO``
[1, M, T, D]) beside the lowest-energy one (``keys.POS``, ``keys.TOPO``). A *view* of
conformer c is the molecule with ``POS`` and ``TOPO`` taken from conformer c and the
ensemble fields dropped, which is all a model reads. Training shows each molecule one
conformer per epoch, drawn with a seeded generator (:func:`drawn_conformers`); prediction
averages over all M (:func:`mimoe_core.forward.run_model`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch_geometric.data import Data

from mimoe_core import keys

#: Each ensemble field, and the field a view of one of its conformers fills from it.
ENSEMBLE_VIEW_OF = {keys.CONF_POS: keys.POS, keys.CONF_TOPO: keys.TOPO}
ENSEMBLE_KEYS = tuple(ENSEMBLE_VIEW_OF)


def conformers_per_molecule(data_list: Sequence[Data]) -> int:
    """M, the conformers each molecule holds (1 without ensembles).

    Raises:
        ValueError: molecules holding different numbers of conformers.
    """
    counts = {int(d[keys.CONF_POS].shape[1]) if keys.CONF_POS in d else 1 for d in data_list}
    if len(counts) > 1:
        raise ValueError(f"the molecules hold different numbers of conformers: {sorted(counts)}")
    return counts.pop() if counts else 1


def conformer_view(data: Data, c: int) -> Data:
    """``data`` showing its conformer ``c`` (0 = the lowest energy); itself without ensembles."""
    if keys.CONF_POS not in data:
        if c != 0:
            raise IndexError(f"conformer {c} of a molecule that holds one")
        return data
    fields = {k: data[k] for k in data.keys() if k not in ENSEMBLE_KEYS}
    for ensemble, view in ENSEMBLE_VIEW_OF.items():
        fields[view] = data[ensemble][:, c]
    return Data(**fields)


def drawn_conformers(
    num_molecules: int, num_conformers: int, seed: int, epoch: int
) -> torch.Tensor:
    """The conformer each training molecule shows in ``epoch``: [num_molecules] long.

    Drawn uniformly from a generator seeded by ``(seed, epoch)`` alone, so a run, its
    resumption and every rank of a distributed run draw the same conformers.

    Example:
        >>> drawn_conformers(4, 1, seed=0, epoch=3).tolist()  # one conformer: always it
        [0, 0, 0, 0]
        >>> bool((drawn_conformers(6, 3, 0, 0) == drawn_conformers(6, 3, 0, 0)).all())
        True
    """
    if num_conformers == 1:
        return torch.zeros(num_molecules, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed * 1_000_033 + epoch * 7 + 12_345)
    return torch.randint(num_conformers, (num_molecules,), generator=gen)
