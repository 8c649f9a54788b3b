"""``mimoe featurize --shards`` then ``mimoe train --shards``: the lazy on-disk path end to end."""

from __future__ import annotations

import json

import pandas as pd

from mimoe_core.cli import main
from mimoe_core.shards import ShardedDataset

SMILES = ["CCO", "CCC", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "OCCO", "CCCC", "c1ccncc1",
          "CC#N", "CCOC", "CCCO", "CC(C)O", "CCS", "NCCO", "OC(=O)CC", "bogus", "CCO"]  # fmt: skip
TRAIN = ["--hidden", "8", "--epochs", "2", "--batch-size", "4", "--quiet", "--device", "cpu",
         "--split", "random"]  # fmt: skip


def test_featurize_to_shards_then_train_from_them(write_csv, tmp_path, capsys):
    data = write_csv([(s, 0.3 * i) for i, s in enumerate(SMILES)], header=("smiles", "y"))
    shards, report = tmp_path / "shards", tmp_path / "report"
    featurize = ["featurize", "--data", str(data), "--target-cols", "y", "--shards",
                 str(shards), "--shard-size", "5", "--out", str(report), "--quiet",
                 "--jobs", "1", "--split", "random"]  # fmt: skip
    assert main(featurize) == 0
    out = capsys.readouterr().out
    assert "16 molecules kept, 2 skipped, in 4 shards" in out
    dataset = ShardedDataset(shards)
    skipped = pd.read_csv(report / "skipped.csv")
    assert len(dataset) + len(skipped) == len(SMILES)  # rows in = kept + reported
    assert {"summary.json", "splits.json"} <= {p.name for p in report.iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in shards.glob("shard_*.pt")}
    assert main(featurize) == 0  # finished shards are kept, not recomputed
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("shard_*.pt")} == stamps

    run = tmp_path / "run"
    assert main(["train", "--shards", str(shards), "--out", str(run), *TRAIN]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 16
    assert metrics["n_skipped"] == 2 and metrics["world_size"] == 1
    rows = json.loads((run / "splits.json").read_text())
    assert sorted(sum((rows[k] for k in ("train_rows", "val_rows", "test_rows")), [])) == sorted(
        dataset.rows.tolist()
    )
    # options that would change what the shards hold are an error, not silently ignored
    moot = ["--limit", "5", "--conformers", "2", "--no-cache"]
    code = main(["train", "--shards", str(shards), "--out", str(tmp_path / "r"), *moot, *TRAIN])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--shards {shards}: --limit, --conformers, --no-cache would change" in err


def test_train_from_a_folder_that_holds_no_shards_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", "--shards", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                 *TRAIN])  # fmt: skip
    assert code == 2
    assert "manifest.json" in capsys.readouterr().err
