"""featurize: Data fields and batching, known molecules, parallel workers, reports."""

import json
import signal
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from mimoe_core import keys
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import load_dataset, read_csv
from mimoe_core.data.table import MoleculeTable
from mimoe_core.featurization import FeaturizedDataset, featurize_dataset, worker_pool
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES

KNOWN = [["O", "1", "0"], ["C", "2", ""], ["c1ccccc1", "", "1"]]


@pytest.fixture
def known(write_csv, quick_featurize):
    path = write_csv(KNOWN, header=("smiles", "a", "b"))
    return quick_featurize(read_csv(path, target_cols=["a", "b"]))


def _bonds(data, a, b, cutoff):
    z, pos = data[keys.Z], data[keys.POS].double()
    dist = torch.cdist(pos, pos)
    mask = (z[:, None] == a) & (z[None, :] == b) & (dist < cutoff) & (dist > 0)
    return dist[mask].numpy()


def test_data_fields(known):
    assert isinstance(known, FeaturizedDataset) and len(known) == 3
    t, d = len(DEFAULT_RADII), len(DESCRIPTOR_NAMES)
    for n, data in enumerate(known.data_list):
        num_atoms = data.num_nodes
        assert data[keys.Z].dtype == torch.long and data[keys.Z].shape == (num_atoms,)
        assert data[keys.POS].dtype == torch.float32 and data[keys.POS].shape == (num_atoms, 3)
        assert data[keys.Y].dtype == torch.float32 and data[keys.Y].shape == (1, 2)
        assert data[keys.Y_MASK].dtype == torch.bool and data[keys.Y_MASK].shape == (1, 2)
        topo = data[keys.TOPO]
        assert topo.dtype == torch.float32 and topo.shape == (1, t, d)
        assert torch.isfinite(topo).all() and (topo >= 0).all() and (topo <= 1).all()
        assert data[keys.ROW] == n and data[keys.MOL_ID] == str(n)
        assert isinstance(data[keys.SMILES], str)
    assert known[1][keys.Y_MASK].tolist() == [[True, False]]
    assert torch.isnan(known[1][keys.Y][0, 1])
    assert known[2][keys.Y_MASK].tolist() == [[False, True]]
    assert known.descriptors.shape == (3, t, d)
    np.testing.assert_array_equal(known.radii, DEFAULT_RADII)


def _methanes(n: int) -> MoleculeTable:
    return MoleculeTable(name="methanes", task="regression", target_names=["a", "b"],
                         inputs=["C"] * n, targets=np.ones((n, 2)), rows=np.arange(n),
                         ids=[str(i) for i in range(n)], n_rows=n)  # fmt: skip


def test_memory_per_molecule_does_not_grow_with_the_dataset(tmp_path, quick_featurize):
    """Each molecule holds only its own arrays. A label mask taken as a view of the whole
    dataset's mask kept one full copy per molecule alive: memory grew with the square of
    the size (18 GB for QM9's 130,831 molecules)."""
    quick_featurize(_methanes(1), cache_dir=tmp_path)  # the conformer, cached once
    held = {}
    for n in (300, 1200):
        tracemalloc.start()
        dataset = quick_featurize(_methanes(n), cache_dir=tmp_path, drop_duplicates=False)
        held[n] = tracemalloc.get_traced_memory()[0] / n
        tracemalloc.stop()
        assert len(dataset) == n
    assert held[1200] < 1.2 * held[300], held


def test_known_molecules(known):
    water, methane, benzene = known.data_list
    assert water[keys.Z].tolist() == [8, 1, 1]
    assert np.allclose(_bonds(water, 8, 1, 1.2), 0.97, atol=0.03)
    assert methane.num_nodes == 5 and np.allclose(_bonds(methane, 6, 1, 1.3), 1.09, atol=0.02)
    assert benzene.num_nodes == 12
    cc = _bonds(benzene, 6, 6, 1.6)
    assert len(cc) == 12 and np.allclose(cc, 1.39, atol=0.02)
    assert known.smiles == ["O", "C", "c1ccccc1"]
    assert all(c["force_field"] == "mmff94" for c in known.conformers)


def test_heavy_atoms_only(write_csv, quick_featurize):
    table = read_csv(write_csv([["c1ccccc1", "1"], ["CCO", "2"]]), target_cols=["y"])
    dataset = quick_featurize(table, settings=ConformerSettings(hydrogens=False))
    assert [d.z.tolist() for d in dataset.data_list] == [[6] * 6, [6, 6, 8]]


def test_batch_stacks_molecules(known):
    batch = Batch.from_data_list(known.data_list)
    assert batch.num_graphs == 3
    assert batch[keys.Z].shape == (3 + 5 + 12,)
    assert batch[keys.POS].shape == (20, 3)
    assert batch[keys.Y].shape == (3, 2) and batch[keys.Y_MASK].shape == (3, 2)
    assert batch[keys.TOPO].shape == (3, len(DEFAULT_RADII), len(DESCRIPTOR_NAMES))
    assert batch.batch.tolist() == [0] * 3 + [1] * 5 + [2] * 12
    assert batch[keys.SMILES] == ["O", "C", "c1ccccc1"]
    assert batch[keys.ROW].tolist() == [0, 1, 2]


def test_same_seed_same_coordinates(write_csv, quick_featurize):
    table = read_csv(write_csv([["CCCCCCO", "1"], ["CC(C)CN", "2"]]), target_cols=["y"])
    first = quick_featurize(table, use_cache=False, settings=ConformerSettings(seed=3))
    second = quick_featurize(table, use_cache=False, settings=ConformerSettings(seed=3))
    other = quick_featurize(table, use_cache=False, settings=ConformerSettings(seed=4))
    for a, b in zip(first.data_list, second.data_list, strict=True):
        assert np.array_equal(a.pos.numpy(), b.pos.numpy())
    assert not np.array_equal(first[0].pos.numpy(), other[0].pos.numpy())


def test_parallel_workers_match_one_process(quick_featurize):
    table = load_dataset("esol", limit=24)
    serial = quick_featurize(table, use_cache=False, n_jobs=1)
    parallel = quick_featurize(table, use_cache=False, n_jobs=2)  # 24 >= 4 * 2: a real pool
    assert parallel.stats["processes"] == 2
    assert len(serial) == len(parallel) == 24
    for a, b in zip(serial.data_list, parallel.data_list, strict=True):
        assert a.row == b.row and a.smiles == b.smiles
        assert np.array_equal(a.pos.numpy(), b.pos.numpy())
        assert torch.equal(a.topo, b.topo)


def test_prediction_table_without_labels(write_csv, quick_featurize):
    table = read_csv(write_csv([["CCO"], ["CCO"]], header=("smiles",)))
    dataset = quick_featurize(table, drop_duplicates=False)
    assert len(dataset) == 2 and dataset[0].y.shape == (1, 0)
    assert dataset.summary()["labels_present"] == []


def test_nothing_kept(write_csv, quick_featurize, assert_accounted):
    table = read_csv(write_csv([["C1CC", "1"], ["[Na+]", "2"]]), target_cols=["y"])
    dataset = quick_featurize(table)
    assert_accounted(dataset, n_rows=2)
    assert len(dataset) == 0
    assert dataset.descriptors.shape == (0, len(DEFAULT_RADII), len(DESCRIPTOR_NAMES))
    summary = dataset.summary()
    assert summary["kept"] == 0 and summary["skipped"] == 2


def test_summary_and_report(tmp_path, write_csv, quick_featurize):
    rows = [["CCO", "1"], ["C1CC", "2"], ["CC(=O)[O-].[Na+]", "3"], ["OCC", "4"], ["CC", "z"]]
    dataset = quick_featurize(read_csv(write_csv(rows), target_cols=["y"]))
    line = dataset.summary_line()
    assert line == "data: 5 rows -> 2 molecules kept, 3 skipped"
    summary = dataset.summary()
    assert (summary["rows"], summary["kept"], summary["skipped"]) == (5, 2, 3)
    assert summary["rows"] == summary["kept"] + summary["skipped"]
    assert sum(summary["skip_reasons"].values()) == 3
    assert "invalid SMILES '…'" in summary["skip_reasons"]
    assert summary["embedding"] == {"etkdg": 2} and summary["multi_fragment_inputs"] == 1
    assert summary["conformer_settings"] == ConformerSettings().to_dict()
    assert summary["descriptors"] == list(DESCRIPTOR_NAMES)
    assert summary["conformers_computed"] == 2 and "seconds" in summary
    assert "molecules=2" in repr(dataset) and "skipped=3" in repr(dataset)

    out = tmp_path / "report"
    dataset.write_report(out)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    skipped = pd.read_csv(out / "skipped.csv")
    assert list(skipped.columns) == ["row", "mol_id", "input", "reason"]
    assert skipped["row"].tolist() == [1, 3, 4]
    assert "RDKit cannot parse" in skipped["reason"][0]
    assert (
        skipped["reason"][1] == "duplicate of row 0 (same canonical SMILES) with different labels"
    )
    assert "not a number" in skipped["reason"][2]


def test_featurize_dataset_by_name(assert_accounted):
    dataset = featurize_dataset("freesolv", limit=5, n_jobs=1, progress=False)
    assert_accounted(dataset, n_rows=5)
    assert dataset.table.name == "freesolv" and len(dataset) == 5
    assert dataset[0].mol_id == dataset.table.ids[0]


def test_unforeseen_rdkit_error_costs_one_molecule_not_the_run(monkeypatch, write_csv):
    import mimoe_core.featurization as featurize_module
    from mimoe_core.data import read_csv

    real = featurize_module.embed_smiles

    def flaky(smiles, settings, polymer):
        if smiles == "CCN":
            raise ValueError("Bad Conformer Id")
        return real(smiles, settings, polymer)

    monkeypatch.setattr(featurize_module, "embed_smiles", flaky)
    table = read_csv(write_csv([("CCO", 1.0), ("CCN", 2.0), ("CCC", 3.0)]), target_cols=["y"])
    dataset = featurize_module.featurize(table, n_jobs=1, progress=False)
    assert len(dataset) == 2
    (skip,) = dataset.skipped
    assert skip.row == 1
    assert "RDKit failed while making the conformer: ValueError: Bad Conformer Id" in skip.reason


def test_convergence_is_recorded_per_molecule(write_csv, quick_featurize):
    table = read_csv(write_csv([["CCO", "1"], ["CCCCCCCCCCO", "2"]]), target_cols=["y"])
    assert [c["converged"] for c in quick_featurize(table).conformers] == [True, True]
    short = ConformerSettings(max_iters=1)  # one iteration: the long chain cannot converge
    dataset = quick_featurize(table, settings=short)
    assert dataset.conformers[1]["converged"] is False
    again = quick_featurize(table, settings=short)  # from the cache
    assert again.stats["conformer_cache_hits"] == 2
    assert [c["converged"] for c in again.conformers] == [
        c["converged"] for c in dataset.conformers
    ]


def test_old_cache_entries_without_convergence_stay_readable():
    from mimoe_core.featurization import _conformer_from_entry

    arrays = {"z": np.array([8, 1, 1], dtype=np.uint8), "pos": np.zeros((3, 3), np.float32)}
    meta = {"ok": True, "smiles": "O", "embedding": "etkdg", "force_field": "mmff94",
            "energy": 0.5, "n_fragments": 1}  # fmt: skip
    conf = _conformer_from_entry(arrays, meta)
    assert conf.converged is None and conf.z.tolist() == [8, 1, 1]


def test_embedding_timeout_is_cached_apart_and_retried_on_request(
    monkeypatch, write_csv, quick_featurize
):
    import itertools

    from rdkit.Chem import rdDistGeom

    import mimoe_core.conformers as conformers

    real = rdDistGeom.EmbedMultipleConfs
    ticks = itertools.count(step=0.001)

    def slow_for_nitrogen(mol, n, params):
        if any(a.GetAtomicNum() == 7 for a in mol.GetAtoms()):
            for _ in range(61_000):  # the clock moves on by 61 s: past the 60 s timeout
                next(ticks)
            return []
        return real(mol, n, params)

    rows = [["CCO", "1"], ["CCN", "2"], ["C(#N)[Fe-2](C#N)(C#N)(C#N)(C#N)N=O", "3"]]
    table = read_csv(write_csv(rows), target_cols=["y"])
    with monkeypatch.context() as patch:
        patch.setattr(conformers, "_clock", lambda: next(ticks))
        patch.setattr(rdDistGeom, "EmbedMultipleConfs", slow_for_nitrogen)
        first = quick_featurize(table)
    reasons = {s.row: s.reason for s in first.skipped}
    assert set(reasons) == {1, 2}
    assert "timed out" in reasons[1] and "--retry-timeouts" in reasons[1]
    assert "timed out" in reasons[2]

    # the next run reads the timeouts from the cache: nothing is embedded again
    second = quick_featurize(table)
    assert second.stats["conformer_cache_hits"] == 3
    assert second.stats["conformers_computed"] == 0
    assert {s.row: s.reason for s in second.skipped} == reasons
    # on request, a quiet machine embeds again the molecules that timed out, and only those
    third = quick_featurize(table, retry_timeouts=True)
    assert third.smiles[:2] == ["CCO", "CCN"]
    assert third.stats["conformer_cache_hits"] == 1  # CCO
    assert third.stats["conformers_computed"] == 2
    assert "3D embedding failed" in third.skipped[0].reason  # a real failure, now cached...
    fourth = quick_featurize(table, retry_timeouts=True)
    assert fourth.stats["conformers_computed"] == 0  # ...like every result
    assert len(fourth) == 2


def test_descriptors_on_worker_processes_equal_one_process(monkeypatch):
    from mimoe_core import featurization
    from mimoe_core.conformers import embed_smiles

    monkeypatch.setattr(featurization, "DESCRIPTOR_CHUNK", 3)  # several chunks, so a pool
    settings = ConformerSettings()
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCCO", "CCCl", "C1CC1", "CC#N"]
    conformers = [embed_smiles(s, settings) for s in smiles]
    radii = np.linspace(1.0, 3.0, 9)
    one, _ = featurization.make_descriptors(conformers, radii, True, None, False, n_jobs=1)
    two, _ = featurization.make_descriptors(conformers, radii, True, None, False, n_jobs=2)
    np.testing.assert_array_equal(one, two)
    assert one.shape == (len(smiles), len(radii), len(featurization.DESCRIPTOR_NAMES))


def _worker_takes_default_sigterm(_: int) -> bool:
    return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_pool_workers_do_not_inherit_a_raising_sigterm_handler():
    """Under torchrun the parent raises on SIGTERM; the pool's own SIGTERM must just end workers."""

    def raising(signum, frame):
        raise RuntimeError("a worker ran the parent's SIGTERM handler")

    previous = signal.signal(signal.SIGTERM, raising)
    try:
        with worker_pool(2) as pool:
            assert all(pool.map(_worker_takes_default_sigterm, range(4)))
    finally:
        signal.signal(signal.SIGTERM, previous)
