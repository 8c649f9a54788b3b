"""3D conformers: known molecules, determinism, fragments, polymer caps and rejections."""

import numpy as np
import pytest

from mimoe_core.conformers import (
    ConformerSettings,
    MoleculeRejected,
    canonical_smiles,
    embed_smiles,
    parse_smiles,
    prepare_molecule,
    structure_conformer,
)
from mimoe_core.data import Structure3D


def _bond_lengths(conf, a: int, b: int, cutoff: float = 1.7) -> np.ndarray:
    """Distances between atoms of atomic numbers a and b shorter than ``cutoff`` Å."""
    pos = conf.pos.astype(np.float64)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    mask = (conf.z[:, None] == a) & (conf.z[None, :] == b) & (dist < cutoff) & (dist > 0)
    return dist[mask]


def test_water():
    conf = embed_smiles("O")
    assert conf.num_atoms == 3 and conf.z.tolist() == [8, 1, 1]
    assert conf.z.dtype == np.int64 and conf.pos.dtype == np.float32 and conf.pos.shape == (3, 3)
    oh = _bond_lengths(conf, 8, 1)
    assert len(oh) == 2 and np.allclose(oh, 0.97, atol=0.03)
    assert conf.embedding == "etkdg" and conf.force_field == "mmff94"
    assert np.isfinite(conf.energy) and conf.n_fragments == 1 and conf.smiles == "O"


def test_methane():
    conf = embed_smiles("C")
    assert conf.z.tolist() == [6, 1, 1, 1, 1]
    ch = _bond_lengths(conf, 6, 1)
    assert len(ch) == 4 and np.allclose(ch, 1.09, atol=0.02)


def test_benzene():
    conf = embed_smiles("c1ccccc1")
    assert conf.num_atoms == 12 and sorted(conf.z.tolist()) == [1] * 6 + [6] * 6
    cc = _bond_lengths(conf, 6, 6, cutoff=1.6)
    assert len(cc) == 12 and np.allclose(cc, 1.39, atol=0.02)  # 6 bonds, counted both ways
    centered = conf.pos[conf.z == 6] - conf.pos[conf.z == 6].mean(axis=0)
    assert np.linalg.svd(centered, compute_uv=False)[-1] < 0.05  # a planar ring


def test_without_hydrogens_keeps_heavy_atoms_only():
    with_h = embed_smiles("c1ccccc1")
    heavy = embed_smiles("c1ccccc1", ConformerSettings(hydrogens=False))
    assert heavy.z.tolist() == [6] * 6
    np.testing.assert_array_equal(heavy.pos, with_h.pos[with_h.z == 6])
    ethanol = embed_smiles("CCO", ConformerSettings(hydrogens=False))
    assert ethanol.z.tolist() == [6, 6, 8]


def test_water_without_hydrogens_is_a_single_atom():
    with pytest.raises(MoleculeRejected, match="single atom"):
        embed_smiles("O", ConformerSettings(hydrogens=False))


def test_same_seed_same_coordinates():
    settings = ConformerSettings(seed=7)
    a = embed_smiles("CCCCCCO", settings)
    b = embed_smiles("CCCCCCO", ConformerSettings(seed=7))
    assert np.array_equal(a.pos, b.pos) and np.array_equal(a.z, b.z)


def test_different_seed_different_coordinates():
    a = embed_smiles("CCCCCCO", ConformerSettings(seed=1))
    b = embed_smiles("CCCCCCO", ConformerSettings(seed=2))
    assert not np.array_equal(a.pos, b.pos)


def test_several_conformers_keep_the_lowest_energy():
    one = embed_smiles("CCCCCCO", ConformerSettings(seed=3, num_conformers=1))
    many = embed_smiles("CCCCCCO", ConformerSettings(seed=3, num_conformers=4))
    assert many.energy <= one.energy + 1e-6


# RDKit seed 0 makes every conformer of EmbedMultipleConfs identical; seeds map to s + 1.
def test_seed_zero_differs_from_seed_one():
    a = embed_smiles("CCCCCCO", ConformerSettings(seed=0))
    b = embed_smiles("CCCCCCO", ConformerSettings(seed=1))
    assert not np.array_equal(a.pos, b.pos)


def test_default_settings_embed_distinct_conformers():
    from rdkit import Chem

    from mimoe_core.conformers import _embed

    mol = Chem.AddHs(Chem.MolFromSmiles("CCCCCCO"))
    ids, _ = _embed(mol, ConformerSettings(num_conformers=4))
    first = [tuple(mol.GetConformer(i).GetPositions()[0].round(4)) for i in ids]
    assert len(set(first)) == 4


def test_salt_keeps_the_largest_fragment():
    conf = embed_smiles("CC(=O)[O-].[Na+]")
    assert conf.n_fragments == 2 and conf.smiles == "CC(=O)[O-]"
    assert 11 not in conf.z and conf.num_atoms == 7
    everything = embed_smiles("CC(=O)[O-].[Na+]", ConformerSettings(fragments="all"))
    assert everything.n_fragments == 2 and everything.num_atoms == 8
    assert 11 in everything.z


def test_polymer_methyl_cap():
    with pytest.raises(MoleculeRejected, match="outside a polymer dataset"):
        embed_smiles("*CC*")
    conf = embed_smiles("*CC*", polymer=True)
    assert conf.smiles == "CCCC"  # each * became a CH3
    assert sorted(conf.z.tolist()) == [1] * 10 + [6] * 4 and 0 not in conf.z


def test_polymer_hydrogen_cap():
    conf = embed_smiles("*CC(*)c1ccccc1", ConformerSettings(polymer_cap="hydrogen"), polymer=True)
    assert conf.smiles == canonical_smiles("CCc1ccccc1")
    assert (conf.z == 6).sum() == 8 and 0 not in conf.z


@pytest.mark.parametrize(
    ("smiles", "reason"),
    [
        ("", "empty SMILES"),
        ("   ", "empty SMILES"),
        ("C1CC", "invalid SMILES 'C1CC': RDKit cannot parse it"),
        ("C[N](C)(C)(C)C", "Explicit valence"),
        ("[Na+]", "single atom or ion"),
        ("[Cl-]", "single atom or ion"),
        ("[Na+].[Cl-]", "single atom or ion"),
    ],
)
def test_rejections_say_why(smiles, reason):
    with pytest.raises(MoleculeRejected, match=None) as err:
        embed_smiles(smiles)
    assert reason in str(err.value)
    assert isinstance(err.value, ValueError)


def test_embedding_failure_is_rejected():
    with pytest.raises(MoleculeRejected, match="3D embedding failed"):
        embed_smiles("C(#N)[Fe-2](C#N)(C#N)(C#N)(C#N)N=O")


def test_max_atoms_counts_hydrogens_when_kept():
    mol, n_fragments = prepare_molecule("CCCC", ConformerSettings(max_atoms=14))
    assert mol.GetNumAtoms() == 4 and n_fragments == 1
    with pytest.raises(MoleculeRejected, match="14 atoms is more than max_atoms=13"):
        prepare_molecule("CCCC", ConformerSettings(max_atoms=13))
    prepare_molecule("CCCC", ConformerSettings(max_atoms=4, hydrogens=False))


def test_parse_and_canonical_smiles():
    assert parse_smiles(" CCO ").GetNumAtoms() == 3
    assert canonical_smiles("OCC") == canonical_smiles("CCO") == "CCO"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fragments": "smallest"},
        {"polymer_cap": "fluorine"},
        {"num_conformers": 0},
        {"max_atoms": 1},
        {"max_iters": -1},
    ],
)
def test_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        ConformerSettings(**kwargs)


def test_settings_to_dict_holds_every_field():
    assert set(ConformerSettings().to_dict()) == {
        "hydrogens", "fragments", "polymer_cap", "num_conformers", "seed", "max_atoms",
        "max_iters",
    }  # fmt: skip


def test_structure_conformer_uses_coordinates_as_given():
    pos = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    conf = structure_conformer(Structure3D(z=np.array([8, 1, 1]), pos=pos, smiles="O"))
    np.testing.assert_array_equal(conf.pos, pos.astype(np.float32))
    assert conf.embedding == "given" and conf.force_field == "given"
    assert np.isnan(conf.energy) and conf.smiles == "O"
    heavy = structure_conformer(
        Structure3D(z=np.array([6, 8, 1]), pos=pos), ConformerSettings(hydrogens=False)
    )
    assert heavy.z.tolist() == [6, 8]
    np.testing.assert_array_equal(heavy.pos, pos[:2].astype(np.float32))


@pytest.mark.parametrize(
    ("z", "pos", "settings", "reason"),
    [
        ([8, 1, 1], np.zeros((2, 3)), None, "shape"),
        ([8, 1], [[0, 0, 0], [np.nan, 0, 0]], None, "NaN"),
        ([0, 1], [[0, 0, 0], [1, 0, 0]], None, "1..99"),
        ([8], [[0, 0, 0]], None, "single atom"),
        ([8, 1, 1], np.eye(3), ConformerSettings(hydrogens=False), "single atom"),
        ([6] * 5, np.eye(5, 3), ConformerSettings(max_atoms=4), "more than max_atoms=4"),
    ],
)
def test_structure_conformer_rejections(z, pos, settings, reason):
    structure = Structure3D(z=np.array(z), pos=np.array(pos, dtype=float))
    with pytest.raises(MoleculeRejected, match=reason):
        structure_conformer(structure, settings)


@pytest.mark.slow  # the failing embedding attempts take about a minute
def test_embedding_that_reports_ids_without_conformers_is_a_clear_rejection():
    # ClinTox row 400: ETKDG returns conformer ids but keeps no conformer for this cage
    # (seed 0 -> RDKit seed 1); MMFF then raised "Bad Conformer Id" deep inside RDKit.
    smiles = (
        "C[C@@H](C1=CCC23C1(C[C@H](C45C2=CC[C@H]6[C@@]4(CC[C@@](C6)(O5)O)C)O)"
        "C[NH+](CCO3)C)OC(=O)c7ccccc7"
    )
    # On a loaded machine the attempt can pass the 60 s limit first: then it is a timeout,
    # also a clear rejection (and not cached).
    with pytest.raises(MoleculeRejected, match="3D embedding failed|timed out"):
        embed_smiles(smiles)


# --- audit: explicit hydrogens, atomic-number limit, force-field failures, timeouts


@pytest.mark.parametrize(
    ("smiles", "z"), [("[H][H]", [1, 1]), ("[2H]O[2H]", [8, 1, 1]), ("[2H][2H]", [1, 1])]
)
def test_explicit_hydrogens_are_atoms(smiles, z):
    conf = embed_smiles(smiles)
    assert sorted(conf.z.tolist()) == sorted(z) and np.isfinite(conf.pos).all()
    assert conf.force_field in ("mmff94", "uff") and conf.converged is True


def test_max_atoms_counts_explicit_hydrogens():
    prepare_molecule("[2H]C([2H])([2H])[2H]", ConformerSettings(max_atoms=5))
    with pytest.raises(MoleculeRejected, match="5 atoms is more than max_atoms=4"):
        prepare_molecule("[2H]C([2H])([2H])[2H]", ConformerSettings(max_atoms=4))
    # without hydrogens only the carbon is left: a single atom
    with pytest.raises(MoleculeRejected, match="single atom"):
        prepare_molecule("[2H]C([2H])([2H])[2H]", ConformerSettings(hydrogens=False))


def test_max_atom_limit_is_the_model_embedding():
    from mimoe_core.constants import MAX_Z
    from mimoe_core.models._common import MAX_Z as MODEL_MAX_Z

    assert MAX_Z == MODEL_MAX_Z == 100
    with pytest.raises(MoleculeRejected, match=r"Fm \(atomic number 100\)"):
        prepare_molecule("C[Fm]", ConformerSettings())
    with pytest.raises(MoleculeRejected, match=r"No \(atomic number 102\)"):
        structure_conformer(Structure3D(z=np.array([102, 8]), pos=np.eye(2, 3)))
    assert structure_conformer(Structure3D(z=np.array([99, 8]), pos=np.eye(2, 3))).num_atoms == 2


def _fake_mmff(monkeypatch, results):
    from rdkit.Chem import rdForceFieldHelpers

    def fake(mol, maxIters=200, **kwargs):  # noqa: N803 - RDKit's keyword
        return list(results)

    monkeypatch.setattr(rdForceFieldHelpers, "MMFFOptimizeMoleculeConfs", fake)


def test_failed_force_field_setup_never_wins_the_conformer_choice(monkeypatch):
    # RDKit reports a failed set-up as (-1, -1.0): the lowest "energy", but not a result.
    _fake_mmff(monkeypatch, [(0, 5.0), (-1, -1.0), (1, 4.0)])
    conf = embed_smiles("CCCCCCO", ConformerSettings(num_conformers=3))
    assert conf.force_field == "mmff94" and conf.energy == 4.0
    assert conf.converged is False  # the kept conformer needed more iterations


def test_force_field_that_fails_everywhere_falls_back_to_uff(monkeypatch):
    _fake_mmff(monkeypatch, [(-1, -1.0), (-1, -1.0)])
    conf = embed_smiles("CCCCCCO", ConformerSettings(num_conformers=2))
    assert conf.force_field == "uff" and conf.energy != -1.0 and conf.converged is True


def test_convergence_is_recorded():
    assert embed_smiles("CCO").converged is True
    assert embed_smiles("CCCCCCCCCCO", ConformerSettings(max_iters=1)).converged is False
    given = structure_conformer(Structure3D(z=np.array([8, 1]), pos=np.eye(2, 3)))
    assert given.converged is None


def test_embedding_timeout_is_its_own_rejection(monkeypatch):
    import itertools

    from rdkit.Chem import rdDistGeom

    import mimoe_core.conformers as conformers

    ticks = itertools.count(step=61.0)  # every clock reading is 61 s after the last
    monkeypatch.setattr(conformers, "_clock", lambda: next(ticks))
    monkeypatch.setattr(rdDistGeom, "EmbedMultipleConfs", lambda mol, n, params: [])
    with pytest.raises(conformers.EmbeddingTimeout, match="timed out") as err:
        embed_smiles("CCO")
    assert isinstance(err.value, MoleculeRejected)
    assert "--retry-timeouts" in str(err.value)
