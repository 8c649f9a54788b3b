"""Chemical atom attributes: values, atom order, SDF input, and the models that read them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from mimoe_core import keys
from mimoe_core.atom_attributes import ATOM_ATTRIBUTE_NAMES, NUM_ATOM_ATTRIBUTES, atom_attributes
from mimoe_core.data.readers import read_sdf
from mimoe_core.data.table import Structure3D
from mimoe_core.forward import prepare_batch
from mimoe_core.models import create_model
from mimoe_core.trained import table_from_smiles

COLUMN = {name: i for i, name in enumerate(ATOM_ATTRIBUTE_NAMES)}


def _named(row: np.ndarray) -> set[str]:
    return {ATOM_ATTRIBUTE_NAMES[i] for i in np.flatnonzero(row)}


@pytest.mark.parametrize(
    ("smiles", "atom", "expected"),
    [  # written from the chemistry, not from RDKit's output
        ("c1ccccc1", 0, {"hybridization_sp2", "aromatic", "in_ring", "formal_charge_0",
                         "hydrogens_1", "cip_none"}),
        ("CCO", 2, {"hybridization_sp3", "formal_charge_0", "hydrogens_1", "cip_none"}),
        ("CC#N", 1, {"hybridization_sp", "formal_charge_0", "hydrogens_0", "cip_none"}),
        ("[NH4+]", 0, {"hybridization_sp3", "formal_charge_+1", "hydrogens_4+", "cip_none"}),
        ("CC(=O)[O-]", 3, {"hybridization_sp2", "formal_charge_-1", "hydrogens_0",
                           "cip_none"}),
        ("C[C@H](N)C(=O)O", 1, {"hybridization_sp3", "formal_charge_0", "hydrogens_1",
                                "cip_s"}),  # L-alanine
        ("C[C@@H](N)C(=O)O", 1, {"hybridization_sp3", "formal_charge_0", "hydrogens_1",
                                 "cip_r"}),  # D-alanine
        ("C1CC1", 0, {"hybridization_sp3", "in_ring", "formal_charge_0", "hydrogens_2",
                      "cip_none"}),
    ],
)  # fmt: skip
def test_attributes_match_the_chemistry(smiles, atom, expected):
    assert _named(atom_attributes(Chem.MolFromSmiles(smiles))[atom]) == expected


def test_every_atom_has_one_value_per_one_hot_group():
    mol = Chem.AddHs(Chem.MolFromSmiles("O=C([O-])c1ccc(cc1)[C@@H](N)C#N"))
    feats = atom_attributes(mol).astype(int)
    assert feats.shape == (mol.GetNumAtoms(), NUM_ATOM_ATTRIBUTES)
    groups = ("hybridization_", "formal_charge_", "hydrogens_", "cip_")
    for prefix in groups:
        cols = [i for n, i in COLUMN.items() if n.startswith(prefix)]
        assert (feats[:, cols].sum(axis=1) == 1).all(), prefix


def test_featurized_attributes_follow_the_conformer_atom_order(quick_featurize):
    table = table_from_smiles(["CCO", "c1ccccc1O", "C[C@H](N)C(=O)[O-]", "CC(C)=O"])
    ds = quick_featurize(table, atom_attributes=True)
    h_cols = [COLUMN[f"hydrogens_{n}"] for n in range(4)] + [COLUMN["hydrogens_4+"]]
    for data in ds.data_list:
        attr = data[keys.ATOM_ATTR].numpy()
        z, pos = data[keys.Z].numpy(), data[keys.POS].numpy()
        assert attr.shape == (len(z), NUM_ATOM_ATTRIBUTES)
        # independent of RDKit's bookkeeping: count the hydrogens bonded in the geometry
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        bonded_h = ((dist < 1.25) & (z[None, :] == 1) & ~np.eye(len(z), dtype=bool)).sum(1)
        for a in np.flatnonzero(z > 1):
            assert attr[a, h_cols].argmax() == min(bonded_h[a], 4)
        assert (attr[z == 1, COLUMN["hybridization_other"]] == 1).all()
    assert ds.feature_settings()["atom_attributes"] is True
    plain = quick_featurize(table)
    assert keys.ATOM_ATTR not in plain.data_list[0]  # off by default, conformers shared
    for a, b in zip(plain.data_list, ds.data_list, strict=True):
        assert torch.equal(a[keys.POS], b[keys.POS])


def test_an_sdf_record_brings_its_attributes_with_stereo_from_3d(tmp_path):
    path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(path))
    for i, smiles in enumerate(["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"]):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=i + 1)
        mol.SetProp("y", "1.0")
        writer.write(mol)
    writer.close()
    table = read_sdf(path, ["y"])
    for item, label in zip(table.inputs, ("cip_s", "cip_r"), strict=True):
        assert isinstance(item, Structure3D) and item.atom_attr.shape[0] == len(item.z)
        assert item.atom_attr[1, COLUMN[label]] == 1


def test_structures_without_bonds_refuse_attributes_clearly(quick_featurize):
    rng = np.random.default_rng(0)
    structure = Structure3D(z=np.array([6, 8, 1, 1]), pos=rng.normal(size=(4, 3)), smiles="C=O")
    table = table_from_smiles(["C=O"])
    table.inputs[0] = structure
    with pytest.raises(ValueError, match="coordinates only"):
        quick_featurize(table, atom_attributes=True)


def _model(**config):
    base = {"atom_attributes": True, "top_k": 2, "expert": {"hidden_channels": 16, "num_layers": 2}}
    return create_model({**base, **config}).double()


@pytest.fixture(scope="module")
def attributed(tmp_path_factory):
    from mimoe_core.featurization import featurize

    table = table_from_smiles(["CCO", "c1ccccc1O", "CC(=O)[O-]", "CC(C)=O", "C#N"])
    cache = tmp_path_factory.mktemp("cache")
    return featurize(table, n_jobs=1, progress=False, cache_dir=cache, atom_attributes=True)


@pytest.mark.parametrize("backbone", ["schnet", "painn", "visnet", "dimenet++", "et"])
def test_every_backbone_reads_the_attributes_and_sparse_dispatch_carries_them(attributed, backbone):
    torch.manual_seed(0)
    model = _model(backbone=backbone).eval()
    batch = prepare_batch(attributed.data_list, "cpu", torch.float64)
    sparse, dense = model.forward_batch(batch), model.forward_batch(batch, compute_all=True)
    torch.testing.assert_close(sparse.y, dense.y)
    changed = batch.clone()
    changed[keys.ATOM_ATTR] = torch.roll(changed[keys.ATOM_ATTR], 1, dims=1)
    assert not torch.allclose(model.forward_batch(changed).y, sparse.y)
    torch.nn.init.zeros_(model.experts[0].attr_embedding.weight)
    for expert in model.experts:
        torch.nn.init.zeros_(expert.attr_embedding.weight)
    blind = create_model({**model.config, "atom_attributes": False}).double().eval()
    blind.load_state_dict(model.state_dict(), strict=False)
    # with the attribute map at zero the model is the atomic-number-only model
    torch.testing.assert_close(model.forward_batch(batch).y, blind.forward_batch(batch).y)


def test_atom_order_does_not_matter_with_attributes(attributed):
    torch.manual_seed(0)
    model = _model().eval()
    data = attributed.data_list[1]
    perm = torch.randperm(data.num_nodes)
    permuted = data.clone()
    for key in (keys.Z, keys.POS, keys.ATOM_ATTR):
        permuted[key] = data[key][perm]
    a, b = (
        model.forward_batch(prepare_batch([d], "cpu", torch.float64)).y for d in (data, permuted)
    )
    torch.testing.assert_close(a, b)


def test_a_model_that_reads_attributes_refuses_data_without_them(quick_featurize):
    ds = quick_featurize(table_from_smiles(["CCO", "CCN"]))
    with pytest.raises(ValueError, match="featurize with atom_attributes=True"):
        _model().forward_batch(prepare_batch(ds.data_list, "cpu", torch.float64))


def test_training_a_reading_model_on_data_without_attributes_fails_before_training(freesolv40):
    from mimoe_core.training import TrainSettings, train

    ds, split = freesolv40
    with pytest.raises(ValueError, match="featurized without them"):
        train(ds, split, {"atom_attributes": True}, TrainSettings(epochs=1, progress=False))
