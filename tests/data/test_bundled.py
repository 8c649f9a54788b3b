"""Bundled datasets: every one loads with all rows accounted, featurizes and splits."""

import numpy as np
import pytest

from mimoe_core.data import BUNDLED, dataset_info, load_dataset, make_split
from mimoe_core.data.bundled import bundled_path
from mimoe_core.featurization import featurize

# Data rows in each source file (bace_pic50 reads the bace file).
SOURCE_ROWS = {
    "freesolv": 642,
    "esol": 1128,
    "lipo": 4200,
    "bace": 1513,
    "bace_pic50": 1513,
    "tox21": 7831,
    "clintox": 1484,
    "polymer_tg": 7174,
    "polymer_density": 1693,
    "polymer_mt": 3651,
    "polymer_o2": 595,
}


def test_every_bundled_dataset_is_listed():
    assert set(BUNDLED) == set(SOURCE_ROWS)
    for name in BUNDLED:
        assert bundled_path(name).exists()


@pytest.mark.parametrize("name", sorted(SOURCE_ROWS))
def test_bundled_dataset_loads_with_every_row_accounted(name):
    table = load_dataset(name)
    info = dataset_info(name)
    assert table.n_rows == SOURCE_ROWS[name]
    assert table.n_rows == len(table) + len(table.skipped)
    kept_and_skipped = sorted(table.rows.tolist() + [s.row for s in table.skipped])
    assert kept_and_skipped == list(range(table.n_rows))
    assert table.name == name and table.source == f"bundled:{name}"
    assert table.task == info.task and table.target_names == list(info.targets)
    assert table.polymer == info.polymer
    assert table.targets.shape == (len(table), len(info.targets))
    assert table.mask.any(axis=1).all()  # a row without any label never gets in
    if info.task == "classification":
        labels = table.targets[table.mask]
        assert set(np.unique(labels)) <= {0.0, 1.0}
    assert all(isinstance(s, str) and s for s in table.inputs)


def test_tox21_has_missing_labels_masked():
    table = load_dataset("tox21")
    assert table.targets.shape[1] == 12
    assert (~table.mask).any()  # missing labels exist, and stay NaN
    assert np.isnan(table.targets[~table.mask]).all()


def test_polymer_datasets_hold_connection_points():
    table = load_dataset("polymer_tg", limit=20)
    assert table.polymer and any("*" in s for s in table.inputs)


def test_load_dataset_limit_and_name_normalization():
    table = load_dataset(" FreeSolv ", limit=7)
    assert len(table) == 7 and table.n_rows == 7 + len(table.skipped)
    assert table.name == "freesolv"


def test_unknown_dataset_lists_the_bundled_ones():
    with pytest.raises(ValueError, match="unknown dataset") as err:
        load_dataset("toxcast")
    for name in BUNDLED:
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(SOURCE_ROWS))
def test_bundled_head_featurizes_and_splits(name, assert_accounted):
    table = load_dataset(name, limit=12)
    dataset = featurize(table, n_jobs=1, progress=False)
    assert_accounted(dataset)
    assert len(dataset) >= 8
    assert dataset.descriptors.shape[0] == len(dataset)
    assert np.isfinite(dataset.descriptors).all()
    for method in ("scaffold", "scaffold_balanced", "random"):
        split = make_split(method, dataset.smiles, seed=1)
        parts = np.concatenate([split.train, split.val, split.test])
        assert sorted(parts.tolist()) == list(range(len(dataset)))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SOURCE_ROWS))
def test_bundled_dataset_featurizes_and_splits_in_full(name, assert_accounted):
    table = load_dataset(name)
    dataset = featurize(table, progress=False)
    assert_accounted(dataset, n_rows=SOURCE_ROWS[name])
    # Most molecules become structures; what does not is reported with a reason.
    assert len(dataset) >= 0.9 * len(table)
    assert np.isfinite(dataset.descriptors).all()
    assert ((dataset.descriptors >= 0) & (dataset.descriptors <= 1)).all()
    split = make_split("scaffold", dataset.smiles)
    parts = np.concatenate([split.train, split.val, split.test])
    assert sorted(parts.tolist()) == list(range(len(dataset)))
    assert split.sizes()[0] >= 0.75 * len(dataset)


def test_regression_datasets_know_their_unit_and_subsets_keep_it():
    from mimoe_core.data import BUNDLED, load_dataset

    expected = {"freesolv": "kcal/mol", "esol": "log mol/L", "polymer_tg": "°C",
                "polymer_density": "g/cm³", "polymer_o2": "Barrer"}  # fmt: skip
    for name, unit in expected.items():
        assert BUNDLED[name].unit == unit
    assert all(info.unit for info in BUNDLED.values() if info.task == "regression")
    table = load_dataset("freesolv", limit=30)
    assert table.unit == "kcal/mol" and table.sample(10).unit == "kcal/mol"
    assert load_dataset("bace").unit == ""
