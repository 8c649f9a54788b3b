"""Packed molecules: the batch PyG's ``Batch.from_data_list`` makes from the conformer views,
field by field and bit by bit, the molecules given back, and clear errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from batch_equality import same_batch, same_bits
from torch_geometric.data import Batch, Data

from mimoe_core import keys
from mimoe_core.conformer_views import conformer_view
from mimoe_core.packed_molecules import PackedMolecules, gather_batch


def _molecules(n: int, conformers: int = 1, atom_attr: bool = False, seed: int = 0) -> list[Data]:
    """Molecules of 1..7 atoms, every value distinct, some labels missing (NaN)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        atoms = 1 + (i * 5) % 7
        y = torch.randn(1, 3, generator=gen)
        y[0, i % 3] = float("nan")
        fields = {
            keys.Y: y,
            keys.POS: torch.randn(atoms, 3, generator=gen),
            keys.Z: torch.randint(1, 10, (atoms,), generator=gen),
            keys.Y_MASK: ~torch.isnan(y),
            keys.TOPO: torch.randn(1, 4, 5, generator=gen),
            keys.SMILES: "C" * (i + 1),
            keys.ROW: 10 * i,
            keys.MOL_ID: f"mol-{i}-é",  # not ASCII: strings are packed as UTF-8
        }
        if atom_attr:
            fields[keys.ATOM_ATTR] = torch.randn(atoms, 6, generator=gen)
        if conformers > 1:
            fields[keys.CONF_POS] = torch.randn(atoms, conformers, 3, generator=gen)
            fields[keys.CONF_POS][:, 0] = fields[keys.POS]
            fields[keys.CONF_TOPO] = torch.randn(1, conformers, 4, 5, generator=gen)
            fields[keys.CONF_TOPO][:, 0] = fields[keys.TOPO]
        out.append(Data(**fields))
    return out


@pytest.mark.parametrize("atom_attr", [False, True])
def test_a_batch_is_the_one_pyg_makes_from_the_molecules(atom_attr):
    molecules = _molecules(30, atom_attr=atom_attr)
    packed = PackedMolecules(molecules)
    for positions in ([0], [3, 1, 4, 1, 5], list(range(29, -1, -1)), [7, 7, 7]):
        reference = Batch.from_data_list([molecules[i] for i in positions])
        same_batch(reference, packed.batch(positions))


def test_a_batch_of_conformer_views_is_the_one_pyg_makes_from_the_views():
    molecules = _molecules(20, conformers=3)
    packed = PackedMolecules(molecules)
    positions = torch.tensor([19, 0, 5, 5, 12, 3])
    chosen = torch.tensor([2, 1, 0, 2, 1, 2])
    views = [conformer_view(molecules[i], int(c)) for i, c in zip(positions, chosen, strict=True)]
    batch = packed.batch(positions, chosen, dtype=torch.float64)
    reference = Batch.from_data_list(views)
    reference[keys.POS] = reference[keys.POS].double()
    same_batch(reference, batch)
    assert keys.CONF_POS not in batch and batch[keys.POS].dtype == torch.float64
    # the lowest-energy conformer by default
    same_batch(
        Batch.from_data_list([conformer_view(molecules[i], 0) for i in positions]),
        packed.batch(positions),
    )
    assert packed.num_conformers == 3


def test_the_batch_takes_each_molecule_apart_again():
    molecules = _molecules(12, atom_attr=True)
    batch = PackedMolecules(molecules).batch([4, 9, 0])
    for slot, i in enumerate([4, 9, 0]):
        _same_molecule(batch.get_example(slot), molecules[i])


def _same_molecule(got: Data, want: Data) -> None:
    assert set(got.keys()) == set(want.keys())
    for key in want.keys():
        expected = want[key]
        if key == keys.ROW and isinstance(got[key], torch.Tensor):
            expected = torch.tensor([expected])  # a batch keeps integers as tensors
        same_bits(expected, got[key], key)


def test_the_molecules_come_back_as_they_were_packed():
    molecules = _molecules(9, conformers=2, atom_attr=True)
    packed = PackedMolecules(molecules)
    assert len(packed) == 9
    for i, molecule in enumerate(molecules):
        _same_molecule(packed[i], molecule)
    _same_molecule(packed[-1], molecules[-1])
    # copies: changing one leaves the packed molecules alone
    packed[2][keys.POS].fill_(0.0)
    _same_molecule(packed[2], molecules[2])
    with pytest.raises(IndexError, match="molecule 9 of 9"):
        packed[9]


def test_real_featurized_molecules_pack(freesolv40):
    molecules = freesolv40[0].data_list
    packed = PackedMolecules(molecules)
    positions = list(range(0, len(molecules), 3))
    reference = Batch.from_data_list([molecules[i] for i in positions])
    reference[keys.POS] = reference[keys.POS].to(torch.float64)
    same_batch(reference, packed.batch(positions, dtype=torch.float64))


def test_a_pickled_copy_gathers_the_same_batches():
    packed = PackedMolecules(_molecules(6))
    again = pickle.loads(pickle.dumps(packed))
    same_batch(packed.batch([5, 0, 2]), again.batch([5, 0, 2]))


def test_what_cannot_be_packed_is_an_error_that_names_it():
    with pytest.raises(ValueError, match="no molecules to pack"):
        PackedMolecules([])
    molecules = _molecules(4)
    with pytest.raises(ValueError, match=r"molecule 2 holds the fields .*atom_attr"):
        PackedMolecules([*molecules[:2], _molecules(3, atom_attr=True)[2], molecules[3]])
    wide = _molecules(3)
    wide[1][keys.TOPO] = torch.zeros(1, 5, 5)
    with pytest.raises(ValueError, match="field 'topo': the molecules' shapes or dtypes differ"):
        PackedMolecules(wide)
    indexed = [Data(pos=torch.zeros(2, 3), edge_index=torch.tensor([[0], [1]])) for _ in range(2)]
    with pytest.raises(ValueError, match="field 'edge_index'"):
        PackedMolecules(indexed)
    weighed = [Data(pos=torch.zeros(1, 3), weight=1.5) for _ in range(2)]
    with pytest.raises(ValueError, match="field 'weight': cannot pack a float"):
        PackedMolecules(weighed)
    mixed = [Data(pos=torch.zeros(1, 3), row=1), Data(pos=torch.zeros(1, 3), row="two")]
    with pytest.raises(ValueError, match="field 'row': not an integer in every molecule"):
        PackedMolecules(mixed)
    with pytest.raises(ValueError, match="no 'pos' field"):
        PackedMolecules([Data(z=torch.tensor([1]))])


def test_a_batch_shares_no_bookkeeping_tensor_with_another_field():
    molecules = _molecules(5, atom_attr=True)
    batch = PackedMolecules(molecules).batch([3, 1, 4])
    batch.ptr.add_(1)  # in place: PyG's own batches would keep their slices
    _same_molecule(batch.get_example(1), molecules[1])
    tensors = [batch.ptr, *batch._slice_dict.values(), *batch._inc_dict.values()]
    ids = [id(t) for t in tensors if t is not None]
    assert len(ids) == len(set(ids))


def test_an_ensemble_field_without_its_partner_is_an_error():
    molecules = _molecules(3, conformers=2)
    for molecule in molecules:
        del molecule[keys.CONF_TOPO]
    with pytest.raises(ValueError, match=r"the ensemble field\(s\) \['conf_pos'\] without"):
        PackedMolecules(molecules)


def test_a_batch_out_of_range_is_an_error():
    packed = PackedMolecules(_molecules(5, conformers=2))
    with pytest.raises(IndexError, match="a position out of range for 5 molecules"):
        packed.batch([0, 5])
    with pytest.raises(IndexError, match="a conformer out of range: the molecules hold 2"):
        packed.batch([0, 1], [0, 2])
    with pytest.raises(ValueError, match="1 conformers for 2 molecules"):
        packed.batch([0, 1], [0])
    single = PackedMolecules(_molecules(3))
    with pytest.raises(IndexError, match="the molecules hold 1"):
        single.batch([0], [1])
    with pytest.raises(ValueError, match="no molecules to batch"):
        single.batch([])
    with pytest.raises(ValueError, match="positions must be integers, got torch.float32"):
        single.batch(torch.tensor([1.7, 0.0]))
    with pytest.raises(ValueError, match="positions must be integers, got torch.bool"):
        single.batch([True, False])
    with pytest.raises(ValueError, match="conformers must be integers, got torch.float32"):
        packed.batch([0, 1], [0.9, 0.2])
    with pytest.raises(TypeError, match="molecule indices must be integers, not slice"):
        single[0:2]


def test_a_batch_from_several_packed_sets_follows_them_part_after_part():
    first, second = _molecules(7, conformers=2), _molecules(5, conformers=2, seed=1)
    parts = [(PackedMolecules(first), [6, 0], [1, 0]), (PackedMolecules(second), [4], [1]),
             (PackedMolecules(first), [3], None)]  # fmt: skip
    views = [conformer_view(first[6], 1), conformer_view(first[0], 0),
             conformer_view(second[4], 1), conformer_view(first[3], 0)]  # fmt: skip
    same_batch(Batch.from_data_list(views), gather_batch(parts))
    with pytest.raises(ValueError, match="no molecules to batch"):
        gather_batch([])
    other = PackedMolecules(_molecules(3, conformers=2, atom_attr=True))
    with pytest.raises(ValueError, match="the parts' molecules hold different fields"):
        gather_batch([(PackedMolecules(first), [0], None), (other, [0], None)])


def test_molecules_packed_elsewhere_are_taken_as_they_are():
    molecules = _molecules(4)
    atoms = torch.tensor([0, *torch.cumsum(torch.tensor([len(m.z) for m in molecules]), 0)])
    one_each = torch.arange(5)
    columns = {
        keys.POS: (torch.cat([m.pos for m in molecules]), atoms),
        keys.Z: (torch.cat([m.z for m in molecules]), atoms),
        keys.Y: (torch.cat([m.y for m in molecules]), one_each),
        keys.Y_MASK: (torch.cat([m.y_mask for m in molecules]), one_each),
        keys.TOPO: (torch.cat([m.topo for m in molecules]), one_each),
    }
    integers = {keys.ROW: torch.tensor([m.row for m in molecules])}
    strings = {k: [m[k] for m in molecules] for k in (keys.SMILES, keys.MOL_ID)}
    fields = list(molecules[0].keys())
    packed = PackedMolecules.from_columns(fields, columns, integers, strings)
    same_batch(Batch.from_data_list([molecules[i] for i in (3, 1)]), packed.batch([3, 1]))
    assert packed._tensors[keys.POS] is columns[keys.POS][0]  # not copied
    with pytest.raises(ValueError, match="columns .* for the fields"):
        PackedMolecules.from_columns(fields[:-1], columns, integers, strings)
    with pytest.raises(ValueError, match="columns of different numbers of molecules"):
        PackedMolecules.from_columns(fields, columns, {keys.ROW: torch.arange(3)}, strings)
    short = {**columns, keys.Z: (columns[keys.Z][0][:-1], atoms)}
    with pytest.raises(ValueError, match="field 'z': its offsets are not integers rising"):
        PackedMolecules.from_columns(fields, short, integers, strings)
    falling = {**columns, keys.Z: (columns[keys.Z][0], atoms[[0, 2, 1, 3, 4]])}
    with pytest.raises(ValueError, match="field 'z': its offsets are not integers rising"):
        PackedMolecules.from_columns(fields, falling, integers, strings)
    floating = {**columns, keys.Z: (columns[keys.Z][0], atoms.double())}
    with pytest.raises(ValueError, match="field 'z': its offsets are not integers rising"):
        PackedMolecules.from_columns(fields, floating, integers, strings)


def test_the_packed_size_counts_every_tensor_offset_and_string_byte():
    molecules = [
        Data(z=torch.tensor([6, 8]), pos=torch.zeros(2, 3), smiles="CO", row=0),
        Data(z=torch.tensor([7]), pos=torch.ones(1, 3), smiles="N", row=1),
    ]
    # z 3 x 8 B, pos 9 x 4 B, their offsets 2 x 3 x 8 B, row 2 x 8 B, "CO" + "N" 3 B and
    # their offsets 3 x 8 B
    assert PackedMolecules(molecules).nbytes == 24 + 36 + 48 + 16 + 3 + 24
