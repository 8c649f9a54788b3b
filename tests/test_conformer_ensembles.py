"""Conformer ensembles (issue 18, Q2): M conformers per molecule, drawn in training, averaged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mimoe_core import conformers, keys
from mimoe_core.cli import main
from mimoe_core.conformer_views import conformer_view, conformers_per_molecule, drawn_conformers
from mimoe_core.conformers import ConformerSettings, embed_smiles
from mimoe_core.data import load_dataset, make_split
from mimoe_core.featurization import featurize
from mimoe_core.forward import run_model
from mimoe_core.models import create_model
from mimoe_core.topology import DEFAULT_RADII, descriptor_trajectories

M = 3
TINY = {"expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8, "num_rbf": 10},
        "gate": {"name": "mlp", "hidden_channels": 8}}  # fmt: skip


def _mmff_energy(smiles: str, pos: np.ndarray) -> float:
    """MMFF94 energy of ``pos`` for the molecule with hydrogens, computed here by RDKit."""
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from rdkit.Geometry import Point3D

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    conf = mol.GetConformer()
    for i, (x, y, z) in enumerate(pos.astype(float)):
        conf.SetAtomPosition(i, Point3D(x, y, z))
    props = AllChem.MMFFGetMoleculeProperties(mol)
    return AllChem.MMFFGetMoleculeForceField(mol, props).CalcEnergy()


def test_an_ensemble_keeps_the_m_lowest_energy_conformers_ranked():
    conf = embed_smiles("CCCCCO", ConformerSettings(keep_conformers=4, num_conformers=6))
    assert conf.ensemble.shape == (4, conf.num_atoms, 3) and conf.distinct == 4
    np.testing.assert_array_equal(conf.ensemble[0], conf.pos)
    energies = [_mmff_energy("CCCCCO", pos) for pos in conf.ensemble]
    np.testing.assert_allclose(energies, conf.ensemble_energies, atol=1e-3)  # float32 coordinates
    assert np.all(np.diff(conf.ensemble_energies) >= 0)
    # the kept four are the lowest of the six embedded: the lowest is the single-conformer pick
    single = embed_smiles("CCCCCO", ConformerSettings(num_conformers=6))
    np.testing.assert_array_equal(single.pos, conf.pos)


def test_one_conformer_is_todays_behaviour_with_todays_cache_key():
    assert "keep_conformers" not in ConformerSettings().to_dict()
    assert ConformerSettings(keep_conformers=2).to_dict()["keep_conformers"] == 2
    conf = embed_smiles("CCO")
    assert conf.ensemble is None and conf.num_conformers == 1 and conf.distinct == 1


def test_fewer_usable_conformers_repeat_in_rank_order(monkeypatch):
    real = conformers._optimize

    def two_usable(mol, settings):
        ids, field, energies, converged = real(mol, settings)
        return ids[:2], field, energies[:2], converged

    monkeypatch.setattr(conformers, "_optimize", two_usable)
    conf = embed_smiles("CCCCO", ConformerSettings(keep_conformers=5))
    assert conf.distinct == 2
    for n in range(5):
        np.testing.assert_array_equal(conf.ensemble[n], conf.ensemble[n % 2])


def test_zero_conformers_per_molecule_is_refused():
    with pytest.raises(ValueError, match="keep_conformers .* must be >= 1, got 0"):
        ConformerSettings(keep_conformers=0)


@pytest.fixture(scope="module")
def ensemble_data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    table = load_dataset("freesolv", limit=24)
    settings = ConformerSettings(keep_conformers=M)
    ds = featurize(table, settings, cache_dir=cache, n_jobs=1, progress=False)
    return ds, cache, table


def test_featurized_molecules_carry_every_conformer_and_its_trajectory(ensemble_data):
    ds, _, _ = ensemble_data
    assert conformers_per_molecule(ds.data_list) == M
    for data in ds.data_list[:5]:
        n = data.num_nodes
        assert data[keys.CONF_POS].shape == (n, M, 3)
        assert data[keys.CONF_TOPO].shape == (1, M, len(DEFAULT_RADII), 5)
        torch.testing.assert_close(data[keys.CONF_POS][:, 0], data[keys.POS])
        clouds = [data[keys.CONF_POS][:, c].double().numpy() for c in range(M)]
        expected = descriptor_trajectories(clouds, DEFAULT_RADII)  # computed here, uncached
        np.testing.assert_allclose(data[keys.CONF_TOPO][0].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert all(info["distinct"] >= 1 for info in ds.conformers)


def test_a_second_featurization_reads_the_ensembles_from_the_cache(ensemble_data):
    ds, cache, table = ensemble_data
    again = featurize(table, ConformerSettings(keep_conformers=M), cache_dir=cache, n_jobs=1,
                      progress=False)  # fmt: skip
    assert again.stats["conformers_computed"] == 0
    for a, b in zip(ds.data_list, again.data_list, strict=True):
        torch.testing.assert_close(a[keys.CONF_POS], b[keys.CONF_POS], atol=0, rtol=0)
        torch.testing.assert_close(a[keys.CONF_TOPO], b[keys.CONF_TOPO], atol=0, rtol=0)


def test_a_view_shows_one_conformer_and_nothing_else(ensemble_data):
    data = ensemble_data[0].data_list[0]
    view = conformer_view(data, 2)
    torch.testing.assert_close(view[keys.POS], data[keys.CONF_POS][:, 2])
    torch.testing.assert_close(view[keys.TOPO], data[keys.CONF_TOPO][:, 2])
    assert keys.CONF_POS not in view and keys.CONF_TOPO not in view
    assert view[keys.SMILES] == data[keys.SMILES]


def test_the_drawn_conformers_follow_the_seed_and_change_with_the_epoch():
    first = drawn_conformers(200, M, seed=3, epoch=0)
    torch.testing.assert_close(first, drawn_conformers(200, M, seed=3, epoch=0))
    assert not torch.equal(first, drawn_conformers(200, M, seed=3, epoch=1))
    assert set(first.tolist()) == set(range(M))


def test_prediction_averages_over_the_conformers_and_reports_their_spread(ensemble_data):
    ds, _, _ = ensemble_data
    torch.manual_seed(0)
    model = create_model(TINY)
    out = run_model(model, ds.data_list, "regression")
    each = [run_model(model, [conformer_view(d, c) for d in ds.data_list], "regression")
            for c in range(M)]  # fmt: skip
    per = np.stack([e["prediction"] for e in each], axis=1)
    np.testing.assert_allclose(out["prediction"], per.mean(axis=1))
    np.testing.assert_allclose(out["conformer_std"], per.std(axis=1, ddof=1))
    np.testing.assert_allclose(out["alpha"], np.mean([e["alpha"] for e in each], axis=0))
    assert (out["conformer_std"] > 0).any()  # the conformers differ


def test_training_shows_drawn_conformers_and_records_how_many(ensemble_data, monkeypatch):
    from mimoe_core.training import TrainSettings, train
    from mimoe_core.training import batches as batches_module

    ds, _, _ = ensemble_data
    ensembles = {int(d[keys.ROW]): d[keys.CONF_POS] for d in ds.data_list}
    shown: list[int] = []
    real = batches_module._StepBatches.__getitem__

    def spy(self, key):  # which conformer each training molecule shows
        batch = real(self, key)
        for slot in range(batch.num_graphs):
            conf = ensembles[int(batch[keys.ROW][slot])]
            pos = batch[keys.POS][batch.batch == slot]
            shown.append(next(c for c in range(M) if torch.equal(conf[:, c], pos)))
        return batch

    monkeypatch.setattr(batches_module._StepBatches, "__getitem__", spy)
    settings = TrainSettings(epochs=2, batch_size=8, progress=False, device="cpu")
    result = train(ds, make_split("random", ds.smiles), TINY, settings)
    assert result.metrics["conformers_per_molecule"] == M
    assert len(shown) >= 2 * 16 and set(shown) == set(range(M))


def test_the_cli_trains_with_conformer_ensembles_and_predicts_their_spread(tmp_path, capsys):
    run, data, out = tmp_path / "run", tmp_path / "in.csv", tmp_path / "pred.csv"
    common = ["--hidden", "8", "--epochs", "1", "--batch-size", "8", "--quiet", "--jobs", "1",
              "--device", "cpu", "--split", "random",
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(["train", "--dataset", "freesolv", "--limit", "30", "--conformers", "2",
                 "--out", str(run), *common]) == 0  # fmt: skip
    assert json.loads((run / "metrics.json").read_text())["conformers_per_molecule"] == 2
    data.write_text("smiles\nCCO\nCCCCCCO\n")
    assert main(["predict", "--model", str(run), "--data", str(data), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    header = out.read_text().splitlines()[0].split(",")
    assert "expt_std" in header  # the spread over the two conformers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--conformers", "0"], "must be >= 1, got 0"),
        (["--uncertainty", "conformers"], "featurize with keep_conformers (--conformers)"),
        (["--conformers", "2", "--uncertainty", "conformers", "--ensemble-size", "2"],
         "not conformers"),
    ],
)  # fmt: skip
def test_the_cli_refuses_what_an_ensemble_cannot_do(options, message, tmp_path, capsys):
    code = main(["train", "--dataset", "freesolv", "--limit", "20", "--epochs", "1", "--quiet",
                 "--jobs", "1", "--out", str(tmp_path / "x"), *options])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_shards_refuse_an_ensemble(tmp_path):
    from mimoe_core.shards import write_shards

    with pytest.raises(ValueError, match="shards hold one conformer per molecule"):
        write_shards(load_dataset("freesolv", limit=4), tmp_path / "s",
                     settings=ConformerSettings(keep_conformers=2))  # fmt: skip
