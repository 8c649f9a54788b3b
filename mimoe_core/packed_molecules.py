"""In-memory molecules packed into a few flat tensors, and batches gathered from them.

A featurized molecule is a PyG ``Data`` of a handful of small tensors (:mod:`mimoe_core.keys`).
Assembling a batch with ``Batch.from_data_list`` walks them in Python, molecule by molecule
and field by field: tens of microseconds per molecule (``benchmarks/bench_loader.py``), which
on a GPU is time the GPU waits at every step. :class:`PackedMolecules` concatenates each field
of all molecules once (strings as UTF-8 bytes), and makes a batch with a few vectorized
gathers, whatever its size.

The batch it makes holds what ``Batch.from_data_list`` makes from the molecules' conformer
views (:func:`~mimoe_core.conformer_views.conformer_view`): the same fields with the same
values, dtypes and shapes, the same ``batch``/``ptr`` vectors and slice bookkeeping (tested
field by field; the fields' order may differ, as PyG's own ``keys()`` order does), so
training reads the same numbers either way. It fills PyG's collation state (``_slice_dict``,
``_inc_dict``, ``_num_graphs``) itself, so that ``get_example`` works: the tests against
``Batch.from_data_list`` guard that coupling to PyG. A forked worker process reads the packed
tensors without writing to them, so it does not copy them page by page as it does a list of
molecules, whose Python reference counts every read writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from mimoe_core import keys
from mimoe_core.conformer_views import ENSEMBLE_VIEW_OF

__all__ = ["PackedMolecules", "PackedStrings", "gather_batch", "integer_index"]


class PackedStrings:
    """Strings as one UTF-8 ``bytes`` object and each string's byte offsets.

    Reading them writes nothing to the memory they share with a forked process but the
    object's header (a list of Python strings would have every string's reference count
    written at every read, and its pages copied).

    Example:
        >>> PackedStrings(["CCO", "ç", ""]).take(torch.tensor([1, 0, 2]))
        ['ç', 'CCO', '']
    """

    def __init__(self, strings: Sequence[str]) -> None:
        encoded = [s.encode() for s in strings]
        self.blob = b"".join(encoded)
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, index: torch.Tensor) -> list[str]:
        """The strings at ``index`` ([n] long, in range), in its order."""
        at = index.numpy()
        starts, ends = self.offsets[at].tolist(), self.offsets[at + 1].tolist()
        blob = self.blob
        return [blob[a:b].decode() for a, b in zip(starts, ends, strict=True)]


class PackedMolecules(Sequence[Data]):
    """Molecules as one concatenated tensor per field; ``[i]`` gives molecule ``i`` back.

    Every tensor field is concatenated along its first dimension (atoms for per-atom fields,
    the leading 1 of per-molecule fields), with the offsets of each molecule's rows. Python
    attributes are kept per molecule: integers in a tensor (as PyG batches them), strings
    packed as bytes (:class:`PackedStrings`).

    Args:
        molecules: featurized molecules that all hold the same fields.

    Raises:
        ValueError: no molecules, molecules with different fields or trailing shapes, an
            ensemble field without its partner (``conf_pos`` and ``conf_topo`` go together),
            or a field that PyG would not simply concatenate (an index field such as
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
        strings: dict[str, Sequence[str]] = {}
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
        strings: dict[str, Sequence[str]] | None = None,
    ) -> PackedMolecules:
        """Molecules already concatenated field by field (a decoded shard), tensors not copied.

        Args:
            fields: the molecules' field names, in their order.
            tensors: field -> (the molecules' rows concatenated, the offsets of each
                molecule's rows: [num_molecules + 1] integers, from 0, never decreasing).
            integers: field -> [num_molecules] integer tensor, one per molecule.
            strings: field -> one string per molecule.

        Raises:
            ValueError: fields missing or extra, columns of different lengths, or offsets
                that are not integers rising from 0 to the field's rows.
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
            if (
                offsets.is_floating_point()
                or offsets.dtype == torch.bool
                or int(offsets[0]) != 0
                or int(offsets[-1]) != value.shape[0]
                or bool((offsets.diff() < 0).any())
            ):
                raise ValueError(
                    f"field {field!r}: its offsets are not integers rising from 0 to its "
                    f"{value.shape[0]} rows"
                )
        out._set_columns(list(fields), dict(tensors), integers, strings)
        return out

    def _set_columns(
        self,
        fields: list[str],
        tensors: dict[str, tuple[torch.Tensor, torch.Tensor]],
        integers: dict[str, torch.Tensor],
        strings: dict[str, Sequence[str]],
    ) -> None:
        if keys.POS not in tensors:
            raise ValueError(f"the molecules have no {keys.POS!r} field")
        ensembles = [f for f in ENSEMBLE_VIEW_OF if f in tensors]
        if ensembles and len(ensembles) != len(ENSEMBLE_VIEW_OF):
            raise ValueError(
                f"the molecules hold the ensemble field(s) {ensembles} without the others of "
                f"{sorted(ENSEMBLE_VIEW_OF)}"
            )
        self.fields = fields
        self._tensors = {f: value for f, (value, _) in tensors.items()}
        self._offsets = {f: offsets.long() for f, (_, offsets) in tensors.items()}
        self._integers = integers
        self._strings = {f: PackedStrings(values) for f, values in strings.items()}
        self.num_molecules = len(self._offsets[keys.POS]) - 1
        # Fields sharing one molecule -> rows layout (all per-atom fields) share their gather;
        # per-molecule fields (one row each) need none.
        one_row_each = torch.arange(self.num_molecules + 1)
        self._layout_of = {
            f: None if torch.equal(o, one_row_each) else _layout_key(f, o, self._offsets)
            for f, o in self._offsets.items()
        }

    def __len__(self) -> int:
        return self.num_molecules

    def __getitem__(self, i: int) -> Data:  # type: ignore[override]
        """Molecule ``i``, equal to the one packed (its tensors are copies).

        Raises:
            TypeError: ``i`` is not an integer (a slice, say).
            IndexError: ``i`` out of range.
        """
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"molecule indices must be integers, not {type(i).__name__}")
        if not -self.num_molecules <= i < self.num_molecules:
            raise IndexError(f"molecule {i} of {self.num_molecules}")
        i = int(i) % self.num_molecules
        fields: dict[str, Any] = {}
        for field in self.fields:
            if field in self._tensors:
                start, stop = self._offsets[field][i : i + 2].tolist()
                fields[field] = self._tensors[field][start:stop].clone()
            elif field in self._integers:
                fields[field] = int(self._integers[field][i])
            else:
                (fields[field],) = self._strings[field].take(torch.tensor([i]))
        return Data(**fields)

    @property
    def nbytes(self) -> int:
        """The packed molecules' size in memory, in bytes (tensors, offsets and strings)."""
        tensors = [*self._tensors.values(), *self._offsets.values(), *self._integers.values()]
        strings = sum(len(s.blob) + s.offsets.nbytes for s in self._strings.values())
        return sum(t.numel() * t.element_size() for t in tensors) + strings

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

        Holds what ``Batch.from_data_list([conformer_view(self[i], c) ...])`` holds.

        Args:
            positions: [n] integers, the molecules in batch order (repeats allowed).
            conformers: [n] integers, the conformer each shows (0, the lowest energy, by
                default).
            dtype: the coordinates' dtype (the model's); unchanged by default.

        Raises:
            IndexError: a position or conformer out of range.
            ValueError: no positions, non-integer positions or conformers, or as many
                conformers as positions not given.
        """
        return gather_batch([(self, positions, conformers)], dtype)

    def _gather(self, positions: Any, conformers: Any) -> dict[str, _Column]:
        """The batch's columns from these molecules: field name -> its gathered column."""
        index = integer_index(positions, "positions")
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
            if field in ENSEMBLE_VIEW_OF.values() and chosen is not None:
                continue  # taken from the conformer's ensemble field below
            if field in self._tensors:
                layout = self._layout_of[field]
                if layout not in gathers:
                    gathers[layout] = _rows_of(self._offsets[field], index)
                rows, sizes, offsets = gathers[layout]
                if field not in ENSEMBLE_VIEW_OF:
                    columns[field] = _Column(self._tensors[field][rows], sizes, offsets)
                elif chosen is not None:  # the view's conformer, gathered alone
                    per_row = torch.repeat_interleave(chosen, sizes, output_size=rows.numel())
                    value = self._tensors[field][rows, per_row]
                    columns[ENSEMBLE_VIEW_OF[field]] = _Column(value, sizes, offsets)
                # else one conformer each: the view drops the ensemble
            elif field in self._integers:
                columns[field] = _Column(self._integers[field][index], None, None)
            else:
                columns[field] = _Column(self._strings[field].take(index), None, None)
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

    Args:
        parts: ``(packed, positions, conformers)`` each, as :meth:`PackedMolecules.batch`
            takes them; the batch holds the first part's molecules, then the second's, and
            so on (as the shards of a step follow each other). The sets hold the same fields.
        dtype: the coordinates' dtype (the model's); unchanged by default.

    Raises:
        ValueError: no molecules, or parts whose molecules hold different fields (and what
            :meth:`PackedMolecules.batch` raises).
    """
    gathered = [packed._gather(positions, conformers) for packed, positions, conformers in parts]
    if not gathered or not sum(len(columns[keys.POS].sizes) for columns in gathered):
        raise ValueError("no molecules to batch")
    names = list(gathered[0])
    if any(set(columns) != set(names) for columns in gathered[1:]):
        raise ValueError("the parts' molecules hold different fields")
    atoms = _concatenated([columns[keys.POS] for columns in gathered])
    count = len(atoms.sizes)
    out = Batch(_base_cls=Data)
    slices: dict[str, torch.Tensor] = {}
    incs: dict[str, torch.Tensor | None] = {}
    for name in names:
        column = _concatenated([columns[name] for columns in gathered])
        out[name] = column.value
        # Tensors of their own, as PyG's collation makes them: none is another's alias.
        slices[name] = torch.arange(count + 1) if column.offsets is None else column.offsets
        incs[name] = (
            None if isinstance(column.value, list) else torch.zeros(count, dtype=torch.long)
        )
    out.batch = torch.repeat_interleave(
        torch.arange(count), atoms.sizes, output_size=int(atoms.offsets[-1])
    )
    out.ptr = atoms.offsets.clone()
    out._num_graphs = count
    out._slice_dict = {name: slices[name] for name in names}
    out._inc_dict = {name: incs[name] for name in names}
    if dtype is not None:
        out[keys.POS] = out[keys.POS].to(dtype)
    return out


def _concatenated(columns: list[_Column]) -> _Column:
    """One field's columns of consecutive parts, as one column of fresh offsets."""
    if len(columns) == 1:
        only = columns[0]
        return only if only.offsets is None else only._replace(offsets=only.offsets.clone())
    first = columns[0].value
    if isinstance(first, list):
        return _Column([v for c in columns for v in c.value], None, None)
    value = torch.cat([c.value for c in columns])
    if columns[0].sizes is None:
        return _Column(value, None, None)
    sizes = torch.cat([c.sizes for c in columns])
    return _Column(value, sizes, _prefix_sums(sizes))


def integer_index(values: Any, what: str) -> torch.Tensor:
    """``values`` (positions, conformers) as a flat long tensor.

    Raises:
        ValueError: floating-point or boolean values, named ``what`` in the message.
    """
    tensor = torch.as_tensor(values).reshape(-1)
    if tensor.numel() and (tensor.is_floating_point() or tensor.dtype == torch.bool):
        raise ValueError(f"{what} must be integers, got {tensor.dtype}")
    return tensor.long()


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


def _chosen_conformers(conformers: Any, count: int, held: int) -> torch.Tensor | None:
    """The batch's conformer per molecule, or None where every molecule holds only one."""
    if conformers is None:
        return None if held == 1 else torch.zeros(count, dtype=torch.long)
    chosen = integer_index(conformers, "conformers")
    if chosen.numel() != count:
        raise ValueError(f"{chosen.numel()} conformers for {count} molecules")
    if chosen.numel() and not (0 <= int(chosen.min()) and int(chosen.max()) < held):
        raise IndexError(f"a conformer out of range: the molecules hold {held}")
    return None if held == 1 else chosen
