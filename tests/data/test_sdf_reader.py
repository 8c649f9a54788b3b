"""read_sdf: 3D coordinates used as given, SD properties as targets, bad records reported."""

import io

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from mimoe_core.data import Structure3D, read_sdf


def _embedded(smiles: str, seed: int) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


def _record(mol: Chem.Mol, title: str, props: dict[str, str]) -> str:
    mol = Chem.Mol(mol)
    mol.SetProp("_Name", title)
    for key, value in props.items():
        mol.SetProp(key, value)
    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    writer.write(mol)
    writer.close()
    return buffer.getvalue()


def _flat_record() -> str:
    """A record with 2D coordinates (no 3D structure)."""
    mol = Chem.MolFromSmiles("CCO")
    AllChem.Compute2DCoords(mol)
    return _record(mol, "flat", {"y": "3.0", "code": "F"})


def _broken_record() -> str:
    """A record RDKit parses but rejects on sanitization (a pentavalent carbon)."""
    mol = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    mol.UpdatePropertyCache(strict=False)
    block = Chem.MolToMolBlock(mol, kekulize=False)
    assert block.startswith("\n")  # an empty title line, replaced below
    return "broken" + block + ">  <y>\n4.0\n\n$$$$\n"


@pytest.fixture
def sdf_file(tmp_path):
    """Ethanol and benzene with 3D coordinates, a 2D record, a broken record, an unlabelled one.

    Returns ``(path, {title: mol})`` for the records with 3D coordinates.
    """
    mols = {
        "ethanol": _embedded("CCO", seed=1),
        "benzene": _embedded("c1ccccc1", seed=2),
        "nolabel": _embedded("CC", seed=3),
    }
    text = (
        _record(mols["ethanol"], "ethanol", {"y": "1.25", "active": "1", "code": "E"})
        + _record(mols["benzene"], "benzene", {"y": "-0.5", "active": "0", "code": "B"})
        + _flat_record()
        + _broken_record()
        + _record(mols["nolabel"], "nolabel", {"code": "N"})
    )
    path = tmp_path / "mols.sdf"
    path.write_text(text)
    return path, mols


def test_broken_record_fixture_is_unreadable(sdf_file):
    path, _ = sdf_file
    records = list(Chem.SDMolSupplier(str(path), removeHs=False))
    assert len(records) == 5 and records[3] is None


def test_coordinates_are_used_as_given(sdf_file):
    path, mols = sdf_file
    table = read_sdf(path, target_props=["y"])
    assert table.n_rows == 5 and len(table) == 2
    assert table.ids == ["ethanol", "benzene"] and table.rows.tolist() == [0, 1]
    reread = list(Chem.SDMolSupplier(str(path), removeHs=False))
    for structure, row in zip(table.inputs, table.rows, strict=True):
        assert isinstance(structure, Structure3D)
        given = reread[row]
        np.testing.assert_array_equal(structure.pos, given.GetConformer().GetPositions())
        np.testing.assert_array_equal(structure.z, [a.GetAtomicNum() for a in given.GetAtoms()])
        original = mols[table.ids[list(table.rows).index(row)]]
        np.testing.assert_allclose(structure.pos, original.GetConformer().GetPositions(), atol=1e-4)
    assert table.inputs[0].smiles == "CCO" and table.inputs[1].smiles == "c1ccccc1"
    assert 1 in table.inputs[0].z  # explicit hydrogens are kept


def test_properties_become_targets(sdf_file):
    path, _ = sdf_file
    table = read_sdf(path, target_props=["y", "active"])
    assert table.target_names == ["y", "active"]
    np.testing.assert_array_equal(table.targets, [[1.25, 1.0], [-0.5, 0.0]])
    table = read_sdf(path, target_props=["active"], task="classification", id_prop="code")
    assert table.ids == ["E", "B"] and table.task == "classification"


def test_bad_records_are_reported(sdf_file):
    path, _ = sdf_file
    table = read_sdf(path, target_props=["y"])
    reasons = {s.row: s.reason for s in table.skipped}
    assert set(reasons) == {2, 3, 4}
    assert "no 3D coordinates" in reasons[2]
    assert "could not read" in reasons[3]
    assert "no label" in reasons[4]
    assert table.n_rows == len(table) + len(table.skipped)


def test_without_targets_keeps_every_3d_record(sdf_file):
    path, _ = sdf_file
    table = read_sdf(path)
    assert table.ids == ["ethanol", "benzene", "nolabel"]
    assert table.targets.shape == (3, 0)
    assert sorted(s.row for s in table.skipped) == [2, 3]


def test_missing_property_names_the_existing_ones(sdf_file):
    path, _ = sdf_file
    with pytest.raises(ValueError, match="columns that exist") as err:
        read_sdf(path, target_props=["energy"])
    for prop in ("'y'", "'active'", "'code'"):
        assert prop in str(err.value)


def test_empty_and_missing_sdf(tmp_path):
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_sdf(empty)
    with pytest.raises(FileNotFoundError):
        read_sdf(tmp_path / "nope.sdf")


def test_featurize_uses_given_coordinates(sdf_file, quick_featurize, assert_accounted):
    path, _ = sdf_file
    table = read_sdf(path, target_props=["y"])
    dataset = quick_featurize(table)
    assert_accounted(dataset, n_rows=5)
    assert dataset.stats["conformers_computed"] == 0
    assert {c["embedding"] for c in dataset.conformers} == {"given"}
    for data, structure in zip(dataset.data_list, table.inputs, strict=True):
        np.testing.assert_array_equal(data.pos.numpy(), structure.pos.astype(np.float32))
        np.testing.assert_array_equal(data.z.numpy(), structure.z)
    assert dataset[0].y.tolist() == [[1.25]] and dataset[0].mol_id == "ethanol"


def test_record_without_id_property_is_not_a_crash(tmp_path):
    path = tmp_path / "ids.sdf"
    text = _record(_embedded("CCO", 1), "first", {"y": "1", "code": "A"}) + _record(
        _embedded("CCN", 2), "second", {"y": "2"}
    )
    path.write_text(text)
    table = read_sdf(path, target_props=["y"], id_prop="code")
    assert table.n_rows == len(table) + len(table.skipped) == 2
    assert table.ids[0] == "A"


def test_elements_past_the_model_embedding_are_reported(tmp_path, quick_featurize):
    from mimoe_core.featurization import featurize

    heavy = Chem.RWMol(_embedded("CC", seed=4))
    heavy.GetAtomWithIdx(1).SetAtomicNum(100)  # fermium: past the model's atom embedding
    heavy.GetAtomWithIdx(1).SetNoImplicit(True)
    path = tmp_path / "heavy.sdf"
    path.write_text(
        _record(heavy.GetMol(), "fermium", {"y": "1"})
        + _record(_embedded("CCO", 1), "ok", {"y": "2"})
    )
    table = read_sdf(path, target_props=["y"])
    dataset = featurize(table, n_jobs=1, progress=False)
    assert dataset.table.n_rows == len(dataset) + len(dataset.skipped) == 2
    (skip,) = dataset.skipped
    assert skip.row == 0 and "Fm (atomic number 100)" in skip.reason
    assert all(int(d.z.max()) < 100 for d in dataset.data_list)


def test_record_with_text_that_is_not_utf8_is_reported(tmp_path):
    good = _record(_embedded("CCO", 1), "first", {"y": "1"})
    bad = _record(_embedded("CCN", 2), "SECOND", {"y": "2"}).encode().replace(b"SECOND", b"S\xffC")
    path = tmp_path / "latin.sdf"
    path.write_bytes(good.encode() + bad)
    table = read_sdf(path, target_props=["y"])
    assert table.n_rows == len(table) + len(table.skipped) == 2
    assert table.ids == ["first"]
    (skip,) = table.skipped
    assert skip.row == 1 and "not UTF-8" in skip.reason
