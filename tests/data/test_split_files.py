"""``--split-file``: chemprop's splits.json and a run's own, onto the rows that were kept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mimoe_core.cli import main
from mimoe_core.data.split_files import split_from_file

SMILES = ["CCO", "CCC", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "bogus", "OCCO", "CCCC",
          "c1ccncc1", "CC#N", "CCOC"]  # fmt: skip
TINY = ["--hidden", "8", "--epochs", "2", "--batch-size", "4", "--quiet", "--jobs", "1",
        "--device", "cpu"]  # fmt: skip


def _write(path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def test_a_chemprop_split_maps_rows_to_kept_molecules_and_counts_the_skipped(tmp_path):
    kept_rows = [r for r in range(12) if r != 6]  # row 6 did not become a molecule
    path = _write(tmp_path / "splits.json", [{"train": [0, 1, 2, 3, 4, 5, 6, 7],
                                              "val": [8, 9], "test": [10, 11]}])  # fmt: skip
    split = split_from_file(path, kept_rows, 12)
    np.testing.assert_array_equal(split.train, [0, 1, 2, 3, 4, 5, 6])  # positions, row 6 gone
    np.testing.assert_array_equal(split.val, [7, 8])
    np.testing.assert_array_equal(split.test, [9, 10])
    assert split.method == "file" and split.source["layout"] == "chemprop"
    assert split.source["dropped_skipped_rows"] == {"train": 1, "val": 0, "test": 0}
    assert split.source["unassigned_molecules"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"train": [0, 1], "val": [1], "test": [2]}], "repeated: 1"),
        ([{"train": [0, 1], "val": [2], "test": [12, 40]}], "does not have .* 12, 40"),
        ([{"train": [0], "val": [1], "test": [2]}] * 2, "holds 2 entries"),
        ({"method": "random", "seed": 0, "train": [0], "val": [1], "test": [2]}, "no source rows"),
        ([{"train": [0, -1], "val": [1], "test": [2]}], "non-negative"),
        ([{"train": [0], "val": [1]}], "test must be a list"),
        ("just text", "expected a JSON list or object"),
    ],
)
def test_a_file_that_is_not_a_partition_of_the_rows_is_a_clear_error(tmp_path, content, message):
    path = _write(tmp_path / "bad.json", content)
    with pytest.raises(ValueError, match=message):
        split_from_file(path, list(range(12)), 12)


def test_a_runs_splits_json_repeats_its_split_and_metrics_count_the_dropped(write_csv, tmp_path):
    data = write_csv([(s, 0.2 * i) for i, s in enumerate(SMILES)], header=("smiles", "y"))
    first, again = tmp_path / "first", tmp_path / "again"
    base = ["train", "--data", str(data), "--target-cols", "y", *TINY]
    assert main([*base, "--split", "random", "--out", str(first)]) == 0
    assert main([*base, "--split-file", str(first / "splits.json"), "--out", str(again)]) == 0
    before, after = (json.loads((p / "splits.json").read_text()) for p in (first, again))
    for part in ("train", "val", "test"):
        assert after[part] == before[part] and after[f"{part}_rows"] == before[f"{part}_rows"]
    metrics = json.loads((again / "metrics.json").read_text())
    assert metrics["split"] == "file" and metrics["split_source"]["layout"] == "mimoe"

    chemprop = _write(tmp_path / "cp.json", [{"train": list(range(8)), "val": [8, 9],
                                              "test": [10, 11]}])  # fmt: skip
    third = tmp_path / "third"
    assert main([*base, "--split-file", chemprop, "--out", str(third)]) == 0
    metrics = json.loads((third / "metrics.json").read_text())
    assert metrics["split_source"]["dropped_skipped_rows"] == {"train": 1, "val": 0, "test": 0}
    assert (metrics["n_train"], metrics["n_val"], metrics["n_test"]) == (7, 2, 2)


def test_a_bad_split_file_from_the_command_line_exits_2(write_csv, tmp_path, capsys):
    data = write_csv([(s, 0.2 * i) for i, s in enumerate(SMILES)], header=("smiles", "y"))
    bad = _write(tmp_path / "bad.json", [{"train": [0, 1], "val": [1], "test": [99]}])
    code = main(["train", "--data", str(data), "--target-cols", "y", "--split-file", bad,
                 "--out", str(tmp_path / "r"), *TINY])  # fmt: skip
    assert code == 2
    assert "99" in capsys.readouterr().err
