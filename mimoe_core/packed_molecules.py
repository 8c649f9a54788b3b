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
from typing import Any, NamedTuple

import torch
from torch_geometric.data import Batch, Data

from mimoe_core import keys

__all__ = ["PackedMolecules", "gather_batch"]

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
        fields = list(first.keys())
        expected = set(fields)
        for i, molecule in enumerate(molecules):
            if set(molecule.keys()) != expected:
                raise ValueError(
                    f"molecule {i} holds the fields {sorted(molecule.keys())}, "
                    f"the first one {sorted(expected)}"
                )
        tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        integers: dict[str, torch.Tensor] = {}
        strings: dict[str, list[str]] = {}
        for field in fields:
            values = [m[field] for m in molecules]
            sample = values[0]
            if isinstance(sample, torch.Tensor):
                if sample.dim() == 0 or first.__cat_dim__(field, sample) != 0:
                    raise ValueError(f"field {field!r}: not concatenated along its first dimension")
                if first.__inc__(field, sample) != 0:
                    raise ValueError(f"field {field!r}: an index field, which batching increments")
                if len({(v.shape[1:], v.dtype) for v in values}) > 1:
                    raise ValueError(f"field {field!r}: the molecules' shapes or dtypes differ")
                sizes = torch.tensor([v.shape[0] for v in values])
                tensors[field] = (torch.cat(values), _prefix_sums(sizes))
            elif isinstance(sample, bool) or not isinstance(sample, (int, str)):
                raise ValueError(f"field {field!r}: cannot pack a {type(sample).__name__}")
            elif isinstance(sample, int):
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                    raise ValueError(f"field {field!r}: not an integer in every molecule")
                integers[field] = torch.tensor(values)
            else:
                if not all(isinstance(v, str) for v in values):
                    raise ValueError(f"field {field!r}: not a string in every molecule")
                strings[field] = values
        self._set_columns(fields, tensors, integers, strings)

    @classmethod
    def from_columns(
        cls,
        fields: Sequence[str],
        tensors: dict[str, tuple[torch.Tensor, torch.Tensor]],
        integers: dict[str, torch.Tensor] | None = None,
        strings: dict[str, list[str]] | None = None,
    ) -> PackedMolecules:
        """Molecules already concatenated field by field (a decoded shard), without a copy.

        Args:
            fields: the molecules' field names, in their order.
            tensors: field -> (the molecules' rows concatenated, the offsets of each
                molecule's rows: [num_molecules + 1], from 0).
            integers: field -> one integer per molecule (a tensor).
            strings: field -> one string per molecule.

        Raises:
            ValueError: fields missing or extra, or columns of different lengths.
        """
        out = cls.__new__(cls)
        integers, strings = dict(integers or {}), dict(strings or {})
        given = [*tensors, *integers, *strings]
        if sorted(given) != sorted(fields) or len(set(given)) != len(given):
            raise ValueError(f"columns {sorted(given)} for the fields {sorted(fields)}")
        counts = {len(o) - 1 for _, o in tensors.values()}
        counts |= {len(v) for v in integers.values()} | {len(v) for v in strings.values()}
        if len(counts) != 1:
            raise ValueError(f"columns of different numbers of molecules: {sorted(counts)}")
        for field, (value, offsets) in tensors.items():
            if int(offsets[0]) != 0 or int(offsets[-1]) != value.shape[0]:
                raise ValueError(f"field {field!r}: offsets do not span its {len(value)} rows")
        out._set_columns(list(fields), dict(tensors), integers, strings)
        return out

    def _set_columns(
        self,
        fields: list[str],
        tensors: dict[str, tuple[torch.Tensor, torch.Tensor]],
        integers: dict[str, torch.Tensor],
        strings: dict[str, list[str]],
    ) -> None:
        if keys.POS not in tensors:
            raise ValueError(f"the molecules have no {keys.POS!r} field")
        self.fields = fields
        self._tensors = {f: value for f, (value, _) in tensors.items()}
        self._offsets = {f: offsets.long() for f, (_, offsets) in tensors.items()}
        self._integers, self._strings = integers, strings
        self.num_molecules = len(self._offsets[keys.POS]) - 1
        # Fields sharing one molecule -> rows layout (all per-atom fields) share their gather;
        # per-molecule fields (one row each) need none.
        one_each = torch.arange(self.num_molecules + 1)
        self._layout_of = {
            f: None if torch.equal(o, one_each) else _layout_key(f, o, self._offsets)
            for f, o in self._offsets.items()
        }

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
        return gather_batch([(self, positions, conformers)], dtype)

    def _gather(
        self, positions: Sequence[int] | torch.Tensor, conformers: Any
    ) -> dict[str, _Column]:
        """The batch's columns from these molecules: field name -> its gathered column."""
        index = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
        if index.numel() and not (
            -self.num_molecules <= int(index.min()) and int(index.max()) < self.num_molecules
        ):
            raise IndexError(f"a position out of range for {self.num_molecules} molecules")
        index = index.remainder(self.num_molecules)
        count = index.numel()
        chosen = _chosen_conformers(conformers, count, self.num_conformers)
        # layout -> (rows, rows per molecule, their offsets in the batch)
        gathers: dict[str | None, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
            None: (index, torch.ones(count, dtype=torch.long), torch.arange(count + 1))
        }
        columns: dict[str, _Column] = {}
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
                columns[name] = _Column(value, sizes, offsets)
            elif field in self._integers:
                columns[name] = _Column(self._integers[field][index], None, None)
            else:
                strings = self._strings[field]
                columns[name] = _Column([strings[i] for i in index.tolist()], None, None)
        return columns


class _Column(NamedTuple):
    """One field of a batch: its value, and for a tensor its rows per molecule and offsets."""

    value: Any
    sizes: torch.Tensor | None
    offsets: torch.Tensor | None


def gather_batch(
    parts: Sequence[tuple[PackedMolecules, Sequence[int] | torch.Tensor, Any]],
    dtype: torch.dtype | None = None,
) -> Batch:
    """One PyG ``Batch`` of molecules from several packed sets, part after part.

    Each part is ``(packed, positions, conformers)`` as :meth:`PackedMolecules.batch` takes
    them; the batch holds the first part's molecules, then the second's, and so on (as the
    shards of a step follow each other). The sets must hold the same fields.

    Raises:
        ValueError: no parts, or parts whose molecules hold different fields.
    """
    if not parts:
        raise ValueError("no molecules to batch")
    gathered = [packed._gather(positions, conformers) for packed, positions, conformers in parts]
    names = list(gathered[0])
    if any(set(columns) != set(names) for columns in gathered[1:]):
        raise ValueError("the parts' molecules hold different fields")
    atoms = _joined([columns[keys.POS] for columns in gathered])
    count = len(atoms.sizes)
    one_each, zeros = torch.arange(count + 1), torch.zeros(count, dtype=torch.long)
    out = Batch(_base_cls=Data)
    slices: dict[str, torch.Tensor] = {}
    incs: dict[str, torch.Tensor | None] = {}
    for name in names:
        column = _joined([columns[name] for columns in gathered])
        out[name] = column.value
        slices[name] = one_each if column.offsets is None else column.offsets
        incs[name] = None if isinstance(column.value, list) else zeros
    out.batch = torch.repeat_interleave(
        torch.arange(count), atoms.sizes, output_size=int(atoms.offsets[-1])
    )
    out.ptr = atoms.offsets
    out._num_graphs = count
    out._slice_dict = _in_field_order(slices, out)
    out._inc_dict = _in_field_order(incs, out)
    if dtype is not None:
        out[keys.POS] = out[keys.POS].to(dtype)
    return out


def _joined(columns: list[_Column]) -> _Column:
    """One field's columns of consecutive parts, as one."""
    if len(columns) == 1:
        return columns[0]
    first = columns[0].value
    if isinstance(first, list):
        return _Column([v for c in columns for v in c.value], None, None)
    value = torch.cat([c.value for c in columns])
    if columns[0].sizes is None:
        return _Column(value, None, None)
    sizes = torch.cat([c.sizes for c in columns])
    return _Column(value, sizes, _prefix_sums(sizes))


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
