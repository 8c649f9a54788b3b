"""The on-disk cache: ArrayCache, cache keys, and featurize's hits and misses."""

import numpy as np
import pytest
import torch

from mimoe_core.cache import ArrayCache, cache_key, default_cache_dir
from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import read_csv
from mimoe_core.featurization import CACHE_FILE

SMILES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "O"]


@pytest.fixture
def table(write_csv):
    rows = [[s, str(i)] for i, s in enumerate(SMILES)] + [["C1CC", "9"]]
    return read_csv(write_csv(rows), target_cols=["y"])


def test_default_cache_dir_follows_the_environment(cache_dir, monkeypatch, tmp_path):
    assert default_cache_dir() == cache_dir
    monkeypatch.delenv("MIMOE_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == (".cache", "mimoe")


def test_array_cache_round_trip(tmp_path):
    path = tmp_path / "sub" / "c.sqlite"
    cache = ArrayCache(path, "things")
    arrays = {
        "z": np.array([8, 1, 1], dtype=np.uint8),
        "pos": np.arange(9, dtype=np.float32).reshape(3, 3),
        "grid": np.linspace(0, 1, 6).reshape(2, 3).T,  # not C-contiguous
        "empty": np.zeros((0, 3)),
        "flag": np.array([True, False]),
    }
    cache.put_many([("k1", arrays, {"smiles": "O", "energy": 1.5, "ok": True})])
    assert len(cache) == 1 and list(cache.keys()) == ["k1"]
    found = cache.get_many(["k1", "missing"])
    assert set(found) == {"k1"}
    got, meta = found["k1"]
    assert meta == {"smiles": "O", "energy": 1.5, "ok": True}
    for name, arr in arrays.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape
        np.testing.assert_array_equal(got[name], arr)
    cache.put_many([("k1", {}, {"ok": False, "reason": "x"})])  # replaces
    assert len(cache) == 1 and cache.get_many(["k1"])["k1"] == ({}, {"ok": False, "reason": "x"})
    assert "entries=1" in repr(cache)
    cache.close()
    reopened = ArrayCache(path, "things")
    assert len(reopened) == 1
    assert len(ArrayCache(path, "others")) == 0  # tables are separate
    reopened.close()


def test_array_cache_many_keys(tmp_path):
    cache = ArrayCache(tmp_path / "c.sqlite", "t")
    cache.put_many((f"k{i}", {"v": np.array([i])}, {}) for i in range(1200))
    found = cache.get_many([f"k{i}" for i in range(1200)])  # more than one SQL batch
    assert len(found) == 1200 and found["k1100"][0]["v"].tolist() == [1100]
    cache.close()


def test_array_cache_rejects_bad_table_names(tmp_path):
    with pytest.raises(ValueError, match="identifier"):
        ArrayCache(tmp_path / "c.sqlite", "drop table;")


def test_zero_dimensional_arrays(tmp_path):
    cache = ArrayCache(tmp_path / "c.sqlite", "t")
    cache.put_many([("k", {"s": np.array(2.5)}, {})])
    assert cache.get_many(["k"])["k"][0]["s"].shape == ()
    assert cache_key(np.array(1.0)) != cache_key(np.array([1.0]))


def test_cache_key_is_sensitive_to_every_part():
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    key = cache_key("conformer", 1, {"seed": 0, "hydrogens": True}, base)
    assert key == cache_key("conformer", 1, {"hydrogens": True, "seed": 0}, base.copy())
    assert len(key) == 64
    changed = base.copy()
    changed[1, 2] += 1e-6
    others = [
        cache_key("conformer", 1, {"seed": 0, "hydrogens": True}, changed),
        cache_key("conformer", 1, {"seed": 0, "hydrogens": True}, base.astype(np.float64)),
        cache_key("conformer", 1, {"seed": 0, "hydrogens": True}, base.reshape(3, 2)),
        cache_key("conformer", 1, {"seed": 1, "hydrogens": True}, base),
        cache_key("conformer", 2, {"seed": 0, "hydrogens": True}, base),
        cache_key("descriptors", 1, {"seed": 0, "hydrogens": True}, base),
    ]
    assert len({key, *others}) == 1 + len(others)
    assert cache_key("ab", "c") != cache_key("a", "bc")  # parts are separated


def _assert_same_data(first, second):
    assert len(first) == len(second)
    for a, b in zip(first.data_list, second.data_list, strict=True):
        for name in ("z", "pos", "y", "y_mask", "topo"):
            assert torch.equal(a[name], b[name]), name
        assert (a.smiles, a.row, a.mol_id) == (b.smiles, b.row, b.mol_id)


def test_second_run_hits_the_cache(table, quick_featurize, cache_dir):
    first = quick_featurize(table)
    assert (cache_dir / CACHE_FILE).exists()
    assert first.stats["conformer_cache_hits"] == 0
    assert first.stats["conformers_computed"] == len(SMILES)
    assert first.stats["descriptor_cache_hits"] == 0
    second = quick_featurize(table)
    assert second.stats["conformer_cache_hits"] == len(SMILES)
    assert second.stats["conformers_computed"] == 0
    assert second.stats["descriptor_cache_hits"] == len(SMILES)
    _assert_same_data(first, second)
    assert second.conformers == first.conformers
    assert [s.reason for s in second.skipped] == [s.reason for s in first.skipped]


@pytest.mark.parametrize(
    "settings", [ConformerSettings(seed=5), ConformerSettings(hydrogens=False)]
)
def test_changed_setting_is_a_miss(table, quick_featurize, settings):
    quick_featurize(table)
    changed = quick_featurize(table, settings=settings)
    assert changed.stats["conformer_cache_hits"] == 0
    assert changed.stats["conformers_computed"] == len(SMILES)


def test_changed_radii_recompute_descriptors_only(table, quick_featurize):
    quick_featurize(table)
    again = quick_featurize(table, radii=np.linspace(1.0, 3.0, 5))
    assert again.stats["conformer_cache_hits"] == len(SMILES)
    assert again.stats["descriptor_cache_hits"] == 0
    assert again[0].topo.shape == (1, 5, 5)


def test_failures_are_cached(write_csv, quick_featurize):
    fe = "C(#N)[Fe-2](C#N)(C#N)(C#N)(C#N)N=O"
    table = read_csv(write_csv([["CCO", "1"], [fe, "2"], ["[Na+]", "3"]]), target_cols=["y"])
    first = quick_featurize(table)
    assert first.stats["conformers_computed"] == 3
    second = quick_featurize(table)
    assert second.stats["conformers_computed"] == 0
    assert second.stats["conformer_cache_hits"] == 3
    assert [(s.row, s.reason) for s in second.skipped] == [(s.row, s.reason) for s in first.skipped]
    assert "3D embedding failed" in second.skipped[0].reason


def test_no_cache_writes_nothing(table, quick_featurize, cache_dir, tmp_path):
    dataset = quick_featurize(table, use_cache=False)
    assert len(dataset) == len(SMILES)
    assert not any(cache_dir.iterdir())
    again = quick_featurize(table, use_cache=False)
    assert again.stats["conformers_computed"] == len(SMILES)


def test_explicit_cache_dir(table, quick_featurize, cache_dir, tmp_path):
    folder = tmp_path / "elsewhere"
    quick_featurize(table, cache_dir=folder)
    assert (folder / CACHE_FILE).exists() and not any(cache_dir.iterdir())
    assert quick_featurize(table, cache_dir=folder).stats["conformers_computed"] == 0


def test_a_cache_written_in_another_format_is_a_clear_error(tmp_path, write_csv, capsys):
    import sqlite3

    from mimoe_core.cache import CACHE_FORMAT, CacheError
    from mimoe_core.cli import main

    folder = tmp_path / "cli_cache"
    path = folder / CACHE_FILE
    ArrayCache(path, "features").put_many([("k", {"a": np.zeros(2)}, {})])
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == CACHE_FORMAT
        db.execute(f"PRAGMA user_version = {CACHE_FORMAT + 1}")
    with pytest.raises(CacheError, match="another mimoe version"):
        ArrayCache(path, "features").get_many(["k"])
    data = write_csv([("CCO", 1.0), ("CCC", 2.0), ("CCN", 3.0)], header=("smiles", "y"))
    code = main(["featurize", "--data", str(data), "--target-cols", "y", "--cache-dir",
                 str(folder), "--out", str(tmp_path / "r"), "--quiet"])  # fmt: skip
    assert code == 2 and "another mimoe version" in capsys.readouterr().err
