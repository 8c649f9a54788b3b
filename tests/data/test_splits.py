"""Scaffold (deterministic and seeded balanced) and random splits, and their JSON form."""

import json

import numpy as np
import pytest

from mimoe_core.data import Split, load_dataset, make_split, random_split, scaffold_split
from mimoe_core.data.splits import SPLIT_METHODS, murcko_scaffold


@pytest.fixture(scope="module")
def freesolv_smiles():
    return load_dataset("freesolv").smiles


def _assert_partition(split, n):
    parts = [split.train, split.val, split.test]
    for part in parts:
        assert part.dtype == np.int64 and (np.diff(part) > 0).all()
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(n))  # disjoint and covering


def _scaffolds(smiles, idx):
    return {murcko_scaffold(smiles[i]) for i in idx}


def test_murcko_scaffold():
    assert murcko_scaffold("Cc1ccccc1") == "c1ccccc1"
    assert murcko_scaffold("CCO") == ""
    assert murcko_scaffold("not a smiles") == ""


def test_scaffold_split_shares_no_scaffold(freesolv_smiles):
    split = scaffold_split(freesolv_smiles)
    n = len(freesolv_smiles)
    _assert_partition(split, n)
    parts = (split.train, split.val, split.test)
    train, val, test = (_scaffolds(freesolv_smiles, p) for p in parts)
    assert not (train & val) and not (train & test) and not (val & test)
    assert split.method == "scaffold" and split.seed is None
    n_train, n_val, n_test = split.sizes()
    assert abs(n_train / n - 0.8) < 0.02
    assert abs(n_val / n - 0.1) < 0.02 and abs(n_test / n - 0.1) < 0.02


def test_scaffold_split_is_deterministic_largest_first(freesolv_smiles):
    first = scaffold_split(freesolv_smiles)
    again = scaffold_split(list(freesolv_smiles), seed=123)  # the seed is unused here
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, part), getattr(again, part))
    # The largest scaffold set (acyclic molecules in FreeSolv) goes to train.
    acyclic = [i for i, s in enumerate(freesolv_smiles) if murcko_scaffold(s) == ""]
    assert set(acyclic) <= set(first.train.tolist())


def test_scaffold_split_small_known_answer():
    smiles = ["c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "C1CCCCC1", "C1CCCCC1C", "CCO", "CCN",
              "CCC", "C1CC1", "c1ccncc1"]  # fmt: skip
    split = scaffold_split(smiles, fractions=(0.5, 0.3, 0.2))
    # Sets, largest first (ties by first row): benzene {0,1,2}, acyclic {5,6,7},
    # cyclohexane {3,4}, cyclopropane {8}, pyridine {9}; caps: train 5, train+val 8.
    assert split.train.tolist() == [0, 1, 2, 3, 4]
    assert split.val.tolist() == [5, 6, 7]
    assert split.test.tolist() == [8, 9]


def test_balanced_split_is_seeded(freesolv_smiles):
    a = scaffold_split(freesolv_smiles, balanced=True, seed=0)
    b = scaffold_split(freesolv_smiles, balanced=True, seed=0)
    c = scaffold_split(freesolv_smiles, balanced=True, seed=1)
    _assert_partition(a, len(freesolv_smiles))
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    assert a.method == "scaffold_balanced" and a.seed == 0
    train, val, test = (_scaffolds(freesolv_smiles, p) for p in (a.train, a.val, a.test))
    assert not (train & val) and not (train & test) and not (val & test)


def test_random_split_is_seeded():
    a, b, c = random_split(100, seed=3), random_split(100, seed=3), random_split(100, seed=4)
    _assert_partition(a, 100)
    assert a.sizes() == (80, 10, 10) and a.method == "random" and a.seed == 3
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        random_split(10, fractions)
    with pytest.raises(ValueError, match="fractions"):
        scaffold_split(["CCO"] * 3, fractions)


def test_make_split_dispatches(freesolv_smiles):
    smiles = freesolv_smiles[:50]
    for method in SPLIT_METHODS:
        split = make_split(method, smiles, seed=2)
        assert split.method == method
        _assert_partition(split, 50)
    with pytest.raises(ValueError, match="unknown split method") as err:
        make_split("stratified", smiles)
    assert all(m in str(err.value) for m in SPLIT_METHODS)


def test_save_and_load_round_trip(tmp_path):
    split = random_split(10, seed=5)
    rows = [2 * i + 1 for i in range(10)]
    path = tmp_path / "splits.json"
    split.save(path, rows=rows)
    data = json.loads(path.read_text())
    assert data["method"] == "random" and data["seed"] == 5
    assert data["test_rows"] == [rows[i] for i in split.test]
    loaded = Split.load(path)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(loaded, part), getattr(split, part))
        assert getattr(loaded, part).dtype == np.int64
    assert loaded.method == "random" and loaded.seed == 5
    split.save(path)
    assert "train_rows" not in json.loads(path.read_text())


def test_split_with_an_empty_part_round_trips(tmp_path):
    split = scaffold_split(["CCO", "CCC"], fractions=(1.0, 0.0, 0.0))
    assert split.sizes() == (2, 0, 0)
    split.save(tmp_path / "s.json")
    assert Split.load(tmp_path / "s.json").sizes() == (2, 0, 0)
