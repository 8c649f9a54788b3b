"""write_shards / ShardedDataset: round trip, row accounting, resume, mismatches, faults."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mimoe_core import keys, shards
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import load_dataset, read_csv
from mimoe_core.featurization import featurize
from mimoe_core.shards import (
    SHARD_FORMAT_VERSION,
    ShardedDataset,
    ShardTableInfo,
    shard_name,
    write_shards,
    writer,
)

FAST = {"n_jobs": 1, "progress": False}
TENSOR_FIELDS = (keys.Z, keys.POS, keys.Y, keys.Y_MASK, keys.TOPO)

# Bad SMILES, an empty SMILES and a bad label (read-time skips), duplicates within a shard
# and across shards (same canonical SMILES, a salt of an earlier molecule, other labels).
MIXED = [
    ["CCO", "1.0"],  # row 0
    ["C1CC", "2.0"],  # 1: unclosed ring
    ["c1ccccc1", "3.0"],  # 2
    ["", "1.0"],  # 3: empty SMILES
    ["CCN", "1.5"],  # 4
    ["CC(=O)O", "0.5"],  # 5
    ["CCCl", "abc"],  # 6: label is not a number
    ["OCC", "1.0"],  # 7: duplicate of row 0 in the same shard
    ["CCCC", "2.5"],  # 8
    ["CCOC", "0.1"],  # 9: first entry of shard 1 (shard_size 8)
    ["CCO", "1.0"],  # 10: duplicate of row 0 from shard 0
    ["CCO.Cl", "1.0"],  # 11: the salt of row 0
    ["xyz", "1.0"],  # 12: not a SMILES
    ["c1ccccc1", "9.0"],  # 13: duplicate of row 2 with another label
    ["CC=O", "0.2"],  # 14
    ["C#N", "0.3"],  # 15
    ["CCCO", "0.4"],  # 16
    ["CC(C)C", "0.6"],  # 17: shard 2
    ["c1ccncc1", "0.7"],  # 18
    ["OCCO", "0.8"],  # 19
    ["NCCN", "0.9"],  # 20
    ["CCCC", "2.5"],  # 21: duplicate of row 8 from shard 1
]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the module, so each molecule is embedded once."""
    return tmp_path_factory.mktemp("shard_cache")


@pytest.fixture(scope="module")
def freesolv() -> object:
    return load_dataset("freesolv", limit=40)


@pytest.fixture(scope="module")
def written(tmp_path_factory, freesolv, feature_cache) -> tuple[Path, object]:
    """``(folder, featurize result)``: 40 FreeSolv molecules in 3 shards of 16, and featurize."""
    out = tmp_path_factory.mktemp("shards") / "freesolv"
    write_shards(freesolv, out, shard_size=16, cache_dir=feature_cache, **FAST)
    return out, featurize(freesolv, cache_dir=feature_cache, **FAST)


@pytest.fixture
def mixed(tmp_path: Path) -> object:
    path = tmp_path / "mixed.csv"
    pd.DataFrame(MIXED, columns=["smiles", "y"]).to_csv(path, index=False)
    return read_csv(path, target_cols=["y"])


@pytest.fixture
def copy(tmp_path: Path, written) -> Path:
    """A copy of the written folder that a test may damage."""
    return Path(shutil.copytree(written[0], tmp_path / "copy"))


def _assert_same_molecule(a, b) -> None:
    assert set(a.keys()) == set(b.keys())
    for key in TENSOR_FIELDS:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True)
    for key in (keys.SMILES, keys.ROW, keys.MOL_ID):
        assert type(a[key]) is type(b[key]) and a[key] == b[key], key


def _shard_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "manifest.json"}


def test_round_trip_equals_featurize(written) -> None:
    out, reference = written
    ds = ShardedDataset.open(out)
    assert len(ds) == len(reference) == 40 and ds.n_shards == 3
    for i in range(len(ds)):
        _assert_same_molecule(ds[i], reference[i])
    _assert_same_molecule(ds[-1], reference[len(reference) - 1])
    assert ds.smiles == reference.smiles
    assert ds.rows.tolist() == [int(d[keys.ROW]) for d in reference.data_list]
    expected = np.stack([d[keys.Y][0].numpy() for d in reference.data_list]).astype(np.float64)
    np.testing.assert_array_equal(ds.labels(), expected)
    assert ds.labels().dtype == np.float64
    np.testing.assert_array_equal(ds.descriptors, reference.descriptors)
    np.testing.assert_array_equal(ds.radii, reference.radii)
    assert ds.settings == reference.settings
    assert ds.feature_settings() == reference.feature_settings()
    assert ds.skipped == reference.skipped
    assert ds.shard_of.tolist() == [0] * 16 + [1] * 16 + [2] * 8
    assert ds.table == ShardTableInfo.of_table(reference.table)
    assert (ds.table.name, ds.table.task, ds.table.n_rows) == ("freesolv", "regression", 40)
    assert ds.table_info.target_names == reference.table.target_names
    summary = ds.summary()
    assert summary["kept"] == 40 and summary["shards"] == 3 and summary["bytes_on_disk"] > 0
    ref_summary = reference.summary()
    for key in ("rows", "skipped", "atoms", "embedding", "force_field", "labels_present"):
        assert summary[key] == pytest.approx(ref_summary[key]), key
    assert "40 molecules kept, 0 skipped, in 3 shards" in ds.summary_line()


def test_shard_file_loads_with_weights_only(written) -> None:
    out, reference = written
    shard = torch.load(out / shard_name(1), weights_only=True)
    assert set(shard) == set(shards.SHARD_KEYS)
    m, t, r, d = 16, 1, len(reference.radii), reference.descriptors.shape[2]
    n_atoms = sum(reference[i].num_nodes for i in range(16, 32))
    expected = {
        "z": ((n_atoms,), torch.int64),
        "pos": ((n_atoms, 3), torch.float32),
        "atom_ptr": ((m + 1,), torch.int64),
        "y": ((m, t), torch.float32),
        "y_mask": ((m, t), torch.bool),
        "topo": ((m, r, d), torch.float32),
        "row": ((m,), torch.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(shard[key].shape) == shape and shard[key].dtype == dtype, key
    assert shard["smiles"] == reference.smiles[16:32]
    assert all(isinstance(s, str) for s in shard["mol_id"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == SHARD_FORMAT_VERSION and manifest["complete"]
    assert [s["file"] for s in manifest["shards"]] == [shard_name(k) for k in range(3)]
    assert [s["entries"] for s in manifest["shards"]] == [[0, 16], [16, 32], [32, 40]]


@pytest.mark.parametrize("colliding", [False, True])
def test_rows_accounted_with_bad_smiles_and_cross_shard_duplicates(
    tmp_path, mixed, feature_cache, monkeypatch, colliding
) -> None:
    if colliding:  # every structure gets one digest: duplicates are still told apart exactly
        monkeypatch.setattr("mimoe_core.shards.writer._digest", lambda embedded: 7)
    ds = write_shards(mixed, tmp_path / "out", shard_size=8, cache_dir=feature_cache, **FAST)
    reference = featurize(mixed, cache_dir=feature_cache, **FAST)
    assert ds.n_shards == 3 and mixed.n_rows == len(MIXED)
    assert mixed.n_rows == len(ds) + len(ds.skipped)
    rows = ds.rows.tolist() + [s.row for s in ds.skipped]
    assert sorted(rows) == list(range(mixed.n_rows))
    # The same molecules and the same reasons as one featurize call on the whole table.
    assert ds.skipped == reference.skipped
    assert ds.rows.tolist() == [int(d[keys.ROW]) for d in reference.data_list]
    for i in range(len(ds)):
        _assert_same_molecule(ds[i], reference[i])
    reasons = {s.row: s.reason for s in ds.skipped}
    assert reasons[7] == reasons[10] == "duplicate of row 0 (same canonical SMILES)"
    assert reasons[11] == "duplicate of row 0 (same structure after salt stripping)"
    assert reasons[13] == "duplicate of row 2 (same canonical SMILES) with different labels"
    assert reasons[21] == "duplicate of row 8 (same canonical SMILES)"
    assert {1, 3, 6, 12} <= set(reasons)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    per_shard = sum(s["molecules"] + s["skipped"] for s in manifest["shards"])
    assert per_shard + manifest["read_skipped"] == mixed.n_rows


def test_resume_after_interrupt(tmp_path, freesolv, feature_cache, monkeypatch) -> None:
    calls: list[int] = []
    real = writer.featurize

    def failing(table, **kwargs):
        calls.append(len(table))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is stopped while shard 2 is being made
        return real(table, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(writer, "featurize", failing)
    with pytest.raises(KeyboardInterrupt):
        write_shards(freesolv, out, shard_size=8, cache_dir=feature_cache, **FAST)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and [s["index"] for s in manifest["shards"]] == [0, 1]
    with pytest.raises(ValueError, match="incomplete .2 of 5 shards"):
        ShardedDataset(out)
    before = {k: (out / shard_name(k)).stat().st_mtime_ns for k in (0, 1)}

    calls.clear()
    monkeypatch.setattr(
        writer, "featurize", lambda table, **kw: calls.append(1) or real(table, **kw)
    )
    ds = write_shards(freesolv, out, shard_size=8, cache_dir=feature_cache, **FAST)
    assert len(calls) == 3  # shards 2, 3 and 4 only
    assert {k: (out / shard_name(k)).stat().st_mtime_ns for k in (0, 1)} == before

    calls.clear()
    write_shards(freesolv, out, shard_size=8, cache_dir=feature_cache, **FAST)
    assert calls == []  # a finished folder is not recomputed

    monkeypatch.setattr(writer, "featurize", real)
    fresh = tmp_path / "fresh"
    write_shards(freesolv, fresh, shard_size=8, cache_dir=feature_cache, **FAST)
    assert _shard_files(out) == _shard_files(fresh)
    assert len(ds) == 40 and ds.skipped == []


def test_resume_rewrites_a_lost_shard(copy, freesolv, feature_cache, monkeypatch) -> None:
    (copy / shard_name(1)).unlink()
    with pytest.raises(ValueError, match=r"shard_00001\.pt is missing"):
        ShardedDataset(copy)
    calls: list[int] = []
    real = writer.featurize
    monkeypatch.setattr(
        writer, "featurize", lambda table, **kw: calls.append(1) or real(table, **kw)
    )
    ds = write_shards(freesolv, copy, shard_size=16, cache_dir=feature_cache, **FAST)
    assert len(calls) == 1 and len(ds) == 40


def test_mismatched_folder_is_refused(copy, freesolv, feature_cache) -> None:
    kwargs = {"cache_dir": feature_cache, **FAST}
    with pytest.raises(ValueError, match="conformer_settings.*another folder"):
        write_shards(freesolv, copy, 16, settings=ConformerSettings(seed=1), **kwargs)
    with pytest.raises(ValueError, match="input_fingerprint"):
        write_shards(load_dataset("freesolv", limit=30), copy, 16, **kwargs)
    with pytest.raises(ValueError, match="shard_size"):
        write_shards(freesolv, copy, 8, **kwargs)
    with pytest.raises(ValueError, match="normalize_descriptors"):
        write_shards(freesolv, copy, 16, normalize_descriptors=False, **kwargs)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "mimoe_version": "0.0.1"}))
    with pytest.raises(ValueError, match="mimoe 0.0.1"):
        write_shards(freesolv, copy, 16, **kwargs)


def test_folder_with_other_files_is_refused(tmp_path, freesolv) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        write_shards(freesolv, tmp_path, 16, **FAST)


def test_corrupt_shard_names_the_file(copy) -> None:
    (copy / shard_name(1)).write_bytes(b"not a shard at all")
    ds = ShardedDataset(copy)  # lazy: opening reads no shard
    ds[0]
    with pytest.raises(ValueError, match=r"shard_00001\.pt cannot be read"):
        ds[20]
    with pytest.raises(ValueError, match=r"shard_00001\.pt"):
        list(ds.data_list)


def test_truncated_shard_names_the_file(copy) -> None:
    path = copy / shard_name(2)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"shard_00002\.pt"):
        ShardedDataset(copy).labels()


def test_bad_manifest_names_the_file(copy, freesolv) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99.*reads version 1"):
        ShardedDataset(copy)
    with pytest.raises(ValueError, match="format version 99"):
        write_shards(freesolv, copy, 16, **FAST)
    (copy / "manifest.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"manifest\.json cannot be read"):
        ShardedDataset(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"manifest\.json is missing"):
        ShardedDataset(copy)


def test_sizes_come_from_the_index_without_decoding_a_molecule(written) -> None:
    """Data-parallel training deals each global batch by these before reading molecules."""
    from mimoe_core.training.parts import molecule_sizes

    out, reference = written
    ds = ShardedDataset(out)
    view = ds.subset([3, 17, 18, 39])
    atoms, labels = molecule_sizes(view)
    assert ds.cached_shards == []  # nothing decoded
    in_memory = molecule_sizes([reference[i] for i in (3, 17, 18, 39)])
    np.testing.assert_array_equal(atoms, in_memory[0])
    np.testing.assert_array_equal(labels, in_memory[1])
    assert atoms.dtype == labels.dtype == np.int64 and (atoms > 0).all()


def test_shard_cache_is_bounded(written) -> None:
    out, reference = written
    ds = ShardedDataset(out, max_cached_shards=2)
    view = ds.data_list
    assert isinstance(view, Sequence) and not isinstance(view, list)
    assert len(view) == 40 and ds.cached_shards == []  # nothing read on open
    seen = [d[keys.ROW] for d in view]
    assert seen == ds.rows.tolist() and len(ds.cached_shards) <= 2
    for i in (0, 39, 17, 2, 33):
        view[i]
        assert len(ds.cached_shards) <= 2
    assert ds.cached_shards == [1, 2] or ds.cached_shards == [0, 2]
    assert ds.cached_shards[-1] == ds.shard_of[33]
    assert [d[keys.ROW] for d in view[5:8]] == ds.rows[5:8].tolist()
    one = ShardedDataset(out, max_cached_shards=1)
    for i in range(len(one)):
        one[i]
        assert len(one.cached_shards) == 1
    with pytest.raises(IndexError):
        ds[40]


def test_grouped_order(written) -> None:
    ds = ShardedDataset(written[0])
    indices = list(range(39, 0, -2)) + [0, 4]
    order = ds.grouped_order(indices, torch.Generator().manual_seed(3))
    assert sorted(order) == sorted(indices)
    of = ds.shard_of[order]
    runs = of[np.flatnonzero(np.diff(of, prepend=-1))].tolist()
    assert sorted(runs) == sorted(set(ds.shard_of[indices].tolist()))  # each shard one run
    again = ds.grouped_order(indices, torch.Generator().manual_seed(3))
    assert order == again
    others = {tuple(ds.grouped_order(indices, torch.Generator().manual_seed(s))) for s in range(5)}
    assert len(others) > 1
    assert ds.grouped_order([], torch.Generator()) == []


def test_a_view_gathers_the_batch_pyg_makes_from_its_molecules(written, monkeypatch) -> None:
    from batch_equality import same_batch
    from torch_geometric.data import Batch

    ds = ShardedDataset(written[0], max_cached_shards=1)
    view = ds.subset([39, 2, 17, 18, 0, 33, 16, 15])  # kept in increasing order
    # within one shard, across all three, back and forth, repeats
    for positions in ([0], [1, 2], [7, 6, 5, 4, 3, 2, 1, 0], [2, 2, 5], [3, 0, 4]):
        reference = Batch.from_data_list([view[i] for i in positions])
        reference[keys.POS] = reference[keys.POS].double()
        zeros = torch.zeros(len(positions), dtype=torch.long)
        same_batch(reference, view.batch(positions, zeros, dtype=torch.double))
    same_batch(Batch.from_data_list([view[-1]]), view.batch([-1]))
    assert len(ds.cached_shards) == 1
    # back and forth between two shards: each decoded once, however often it comes back
    reference = Batch.from_data_list([view[i] for i in (0, 3, 1, 2)])
    loads = []
    real = shards.reader._load_shard
    monkeypatch.setattr(shards.reader, "_load_shard", lambda *a: loads.append(a) or real(*a))
    ds.clear_cache()
    same_batch(reference, view.batch([0, 3, 1, 2]))
    assert len(loads) == 2
    with pytest.raises(IndexError, match="a position out of range for 8 molecules"):
        view.batch([8])
    with pytest.raises(IndexError, match="the molecules hold 1"):
        view.batch([0, 1], [0, 1])
    with pytest.raises(ValueError, match="1 conformers for 2 molecules"):
        view.batch([0, 1], [0])
    with pytest.raises(ValueError, match="no molecules to batch"):
        view.batch([])


KILL_SCRIPT = """
import os, signal, sys
from mimoe_core import shards
from mimoe_core.shards import writer
from mimoe_core.data import load_dataset

import torch

real, saved = writer._save_shard, []

def save_then_die(path, shard):
    if len(saved) == 2:  # killed while writing shard 2: its temporary file is half done
        torch.save(shard, path.with_name(f".{path.name}.tmp-{os.getpid()}"))
        os.kill(os.getpid(), signal.SIGKILL)
    saved.append(path)
    real(path, shard)

writer._save_shard = save_then_die  # looked up in writer, where write_shards calls it
table = load_dataset("freesolv", limit=40)
shards.write_shards(table, sys.argv[1], 8, cache_dir=sys.argv[2], n_jobs=1, progress=False)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_resume_after_sigkill(tmp_path, freesolv, feature_cache, written) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", KILL_SCRIPT, str(out), str(feature_cache)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["index"] for s in manifest["shards"]] == [0, 1]
    assert list(out.glob(".shard_00002.pt.tmp-*")) and not (out / shard_name(2)).exists()
    ds = write_shards(freesolv, out, shard_size=8, cache_dir=feature_cache, **FAST)
    assert len(ds) == 40 and not list(out.glob(".*"))
    for i in range(len(ds)):
        _assert_same_molecule(ds[i], written[1][i])


def test_shard_with_only_duplicates(tmp_path, feature_cache) -> None:
    path = tmp_path / "dups.csv"
    pd.DataFrame(
        [["CCO", 1], ["CCN", 2], ["OCC", 1], ["NCC", 2], ["C", 3]], columns=["smiles", "y"]
    ).to_csv(path, index=False)
    table = read_csv(path, target_cols=["y"])
    ds = write_shards(table, tmp_path / "out", shard_size=2, cache_dir=feature_cache, **FAST)
    assert ds.shard_counts == [2, 0, 1] and len(ds.skipped) == 2
    assert [d[keys.SMILES] for d in ds.data_list] == ["CCO", "CCN", "C"]
    assert ds.labels().shape == (3, 1) and ds.shard_of.tolist() == [0, 0, 2]
    assert ds.grouped_order([2, 0, 1], torch.Generator().manual_seed(0))[0] in (0, 1, 2)
