"""In-memory molecules packed into a few flat tensors, and batches gathered from them.

A featurized molecule is a PyG ``Data`` of a handful of small tensors (:mod:`mimoe_core.keys`).
Assembling a batch with ``Batch.from_data_list`` walks them in Python, molecule by molecule
and field by field: tens of microseconds per molecule (``benchmarks/bench_loader.py``), which
on a GPU is time the GPU waits at every step. :class:`PackedMolecules` concatenates each field
of all molecules once, and makes a batch with a few vectorized gathers, whatever its size.

The batch it makes is the one ``Batch.from_data_list`` makes from the molecules' conformer
views (:func:`~mimoe_core.conformer_views.conformer_view`): the same fields, values, dtypes,
``batch``/``ptr`` vectors and slice bookkeeping (tested field by field), so training reads the
same numbers either way. Forked worker processes read the packed tensors without writing to
them, so they do not copy them page by page as they do a list of molecules, whose reference
counts every read writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch_geometric.data import Batch, Data

from mimoe_core import keys

__all__ = ["PackedMolecules"]

ENSEMBLE_VIEWS = {keys.CONF_POS: keys.POS, keys.CONF_TOPO: keys.TOPO}


class PackedMolecules(Sequence[Data]):
    """Molecules as one concatenated tensor per field; ``[i]`` gives molecule ``i`` back.

    Every field is concatenated along its first dimension (atoms for per-atom fields, the
    leading 1 of per-molecule fields), with the offsets of each molecule's rows. Python
    attributes are kept per molecule: integers in a tensor (as PyG batches them), strings
    in a list.

    Args:
        molecules: featurized molecules that all hold the same fields.

    Raises:
        ValueError: no molecules, molecules with different fields or trailing shapes, or a
            field that PyG would not simply concatenate (an index field such as
            ``edge_index``, or a type other than tensor, int and str).

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> mols = [Data(z=torch.tensor([6, 8]), pos=torch.zeros(2, 3)),
        ...         Data(z=torch.tensor([7]), pos=torch.ones(1, 3))]
        >>> packed = PackedMolecules(mols)
        >>> packed.batch([1, 0]).z.tolist()
        [7, 6, 8]
        >>> packed[1].z.tolist()
        [7]
    """

    def __init__(self, molecules: Sequence[Data]) -> None:
        if len(molecules) == 0:
            raise ValueError("no molecules to pack")
        first = molecules[0]
        self.fields = list(first.keys())
        if keys.POS not in self.fields:
            raise ValueError(f"the molecules have no {keys.POS!r} field")
        expected = set(self.fields)
        for i, molecule in enumerate(molecules):
            if set(molecule.keys()) != expected:
                raise ValueError(
                    f"molecule {i} holds the fields {sorted(molecule.keys())}, "
                    f"the first one {sorted(expected)}"
                )
        self._tensors: dict[str, torch.Tensor] = {}
        self._offsets: dict[str, torch.Tensor] = {}
        self._integers: dict[str, torch.Tensor] = {}
        self._strings: dict[str, list[str]] = {}
        for field in self.fields:
            values = [m[field] for m in molecules]
            self._pack(first, field, values)
        self.num_molecules = len(molecules)
        # Fields sharing one molecule -> rows layout (all per-atom fields) share their gather;
        # per-molecule fields (one row each) need none.
        one_each = torch.arange(self.num_molecules + 1)
        self._layout_of = {
            f: None if torch.equal(o, one_each) else _layout_key(f, o, self._offsets)
            for f, o in self._offsets.items()
        }

    def _pack(self, first: Data, field: str, values: list[Any]) -> None:
        sample = values[0]
        if isinstance(sample, torch.Tensor):
            if sample.dim() == 0 or first.__cat_dim__(field, sample) != 0:
                raise ValueError(f"field {field!r}: not concatenated along its first dimension")
            if first.__inc__(field, sample) != 0:
                raise ValueError(f"field {field!r}: an index field, which batching increments")
            tails = {(v.shape[1:], v.dtype) for v in values}
            if len(tails) > 1:
                raise ValueError(f"field {field!r}: the molecules' shapes or dtypes differ")
            self._tensors[field] = torch.cat(values)
            sizes = torch.tensor([v.shape[0] for v in values])
            self._offsets[field] = _prefix_sums(sizes)
        elif isinstance(sample, bool) or not isinstance(sample, (int, str)):
            raise ValueError(f"field {field!r}: cannot pack a {type(sample).__name__}")
        elif isinstance(sample, int):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ValueError(f"field {field!r}: not an integer in every molecule")
            self._integers[field] = torch.tensor(values)
        else:
            if not all(isinstance(v, str) for v in values):
                raise ValueError(f"field {field!r}: not a string in every molecule")
            self._strings[field] = values

    def __len__(self) -> int:
        return self.num_molecules

    def __getitem__(self, i: int) -> Data:  # type: ignore[override]
        """Molecule ``i``, equal to the one packed (its tensors are copies)."""
        if not -self.num_molecules <= i < self.num_molecules:
            raise IndexError(f"molecule {i} of {self.num_molecules}")
        i %= self.num_molecules
        fields: dict[str, Any] = {}
        for field in self.fields:
            if field in self._tensors:
                start, stop = self._offsets[field][i : i + 2].tolist()
                fields[field] = self._tensors[field][start:stop].clone()
            elif field in self._integers:
                fields[field] = int(self._integers[field][i])
            else:
                fields[field] = self._strings[field][i]
        return Data(**fields)

    @property
    def num_conformers(self) -> int:
        """M, the conformers each molecule holds (1 without ensembles)."""
        return int(self._tensors[keys.CONF_POS].shape[1]) if keys.CONF_POS in self._tensors else 1

    def batch(
        self,
        positions: Sequence[int] | torch.Tensor,
        conformers: Sequence[int] | torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
    ) -> Batch:
        """The molecules at ``positions``, each showing its conformer, as one PyG ``Batch``.

        Equal to ``Batch.from_data_list([conformer_view(self[i], c) ...])``.

        Args:
            positions: the molecules, in batch order (repeats allowed).
            conformers: the conformer each shows (0, the lowest energy, by default).
            dtype: the coordinates' dtype (the model's); unchanged by default.

        Raises:
            IndexError: a position or conformer out of range.
        """
        index = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
        if index.numel() and not (
            -self.num_molecules <= int(index.min()) and int(index.max()) < self.num_molecules
        ):
            raise IndexError(f"a position out of range for {self.num_molecules} molecules")
        index = index.remainder(self.num_molecules)
        count = index.numel()
        chosen = _chosen_conformers(conformers, count, self.num_conformers)
        one_each = torch.arange(count + 1)
        # layout -> (rows, rows per molecule, their offsets in the batch)
        gathers: dict[str | None, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
            None: (index, torch.ones(count, dtype=torch.long), one_each)
        }
        out = Batch(_base_cls=Data)
        slices: dict[str, torch.Tensor] = {}
        incs: dict[str, torch.Tensor | None] = {}
        zeros = torch.zeros(count, dtype=torch.long)
        for field in self.fields:
            if field in ENSEMBLE_VIEWS.values() and chosen is not None:
                continue  # taken from the conformer's ensemble field below
            name = ENSEMBLE_VIEWS.get(field, field)
            if field in self._tensors:
                layout = self._layout_of[field]
                if layout not in gathers:
                    gathers[layout] = _rows_of(self._offsets[field], index)
                rows, sizes, offsets = gathers[layout]
                value = self._tensors[field][rows]
                if field in ENSEMBLE_VIEWS:
                    if chosen is None:
                        continue  # one conformer each: the view drops the ensemble
                    per_row = torch.repeat_interleave(chosen, sizes, output_size=rows.numel())
                    value = value[torch.arange(rows.numel()), per_row]
                out[name] = value
                slices[name] = offsets
                incs[name] = zeros
            elif field in self._integers:
                out[name] = self._integers[field][index]
                slices[name] = one_each
                incs[name] = zeros
            else:
                strings = self._strings[field]
                out[name] = [strings[i] for i in index.tolist()]
                slices[name] = one_each
                incs[name] = None
        _, atoms, atom_offsets = gathers[self._layout_of[keys.POS]]
        atom_count = int(atom_offsets[-1])
        out.batch = torch.repeat_interleave(torch.arange(count), atoms, output_size=atom_count)
        out.ptr = atom_offsets
        out._num_graphs = count
        out._slice_dict = _in_field_order(slices, out)
        out._inc_dict = _in_field_order(incs, out)
        if dtype is not None:
            out[keys.POS] = out[keys.POS].to(dtype)
        return out


def _prefix_sums(sizes: torch.Tensor) -> torch.Tensor:
    """[0, s0, s0 + s1, ...]: the offsets of consecutive blocks of ``sizes`` rows."""
    out = torch.zeros(sizes.numel() + 1, dtype=torch.long)
    torch.cumsum(sizes, 0, out=out[1:])
    return out


def _layout_key(field: str, offsets: torch.Tensor, all_offsets: dict[str, torch.Tensor]) -> str:
    """The first field whose offsets equal ``field``'s: fields with one layout share a gather."""
    for other, theirs in all_offsets.items():
        if other == field or torch.equal(theirs, offsets):
            return other
    return field


def _rows_of(
    offsets: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows of molecules ``index`` in a field with ``offsets``.

    Returns the rows, each molecule's row count, and the offsets of its rows in the batch.
    """
    starts = offsets[index]
    sizes = offsets[index + 1] - starts
    in_batch = _prefix_sums(sizes)
    total = int(in_batch[-1])
    # Row r of the batch is row (r - first row of its molecule in the batch) of that molecule.
    shift = starts - in_batch[:-1]
    rows = torch.arange(total) + torch.repeat_interleave(shift, sizes, output_size=total)
    return rows, sizes, in_batch


def _chosen_conformers(
    conformers: Sequence[int] | torch.Tensor | None, count: int, held: int
) -> torch.Tensor | None:
    """The batch's conformer per molecule, or None where every molecule holds only one."""
    if conformers is None:
        return None if held == 1 else torch.zeros(count, dtype=torch.long)
    chosen = torch.as_tensor(conformers, dtype=torch.long).reshape(-1)
    if chosen.numel() != count:
        raise ValueError(f"{chosen.numel()} conformers for {count} molecules")
    if chosen.numel() and not (0 <= int(chosen.min()) and int(chosen.max()) < held):
        raise IndexError(f"a conformer out of range: the molecules hold {held}")
    return None if held == 1 else chosen


def _in_field_order(per_field: dict[str, Any], batch: Batch) -> dict[str, Any]:
    """``per_field`` in the order of the batch's fields, as PyG's collation records it."""
    return {name: per_field[name] for name in batch.keys() if name in per_field}
