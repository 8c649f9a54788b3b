"""``mimoe train`` and ``mimoe predict`` end to end on a small CSV."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from rdkit import Chem

from mimoe_core.cli import main

SMILES = ["CCO", "CCC", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "OCCO", "CCCC", "c1ccncc1",
          "CC#N", "CCOC", "CCCO", "CC(C)O", "CCS", "NCCO", "OC(=O)CC"]  # fmt: skip
TINY = ["--hidden", "8", "--epochs", "2", "--batch-size", "8", "--quiet", "--jobs", "1",
        "--device", "cpu", "--split", "random"]  # fmt: skip


@pytest.fixture
def train_csv(write_csv):
    rows = [(s, 0.5 * i) for i, s in enumerate(SMILES)]
    return write_csv(rows, header=("smiles", "logp"))


def test_train_then_predict(train_csv, write_csv, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out", str(run),
                 "--top-k", "1", "--gate", "transformer", "--unit", "log units",
                 *TINY])  # fmt: skip
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["unit"] == "log units"
    expected = {"task", "targets", "split", "seed", "n_train", "n_val", "n_test", "n_skipped",
                "val", "test"}  # fmt: skip
    assert expected <= set(metrics)
    assert metrics["model"]["top_k"] == 1 and metrics["targets"] == ["logp"]
    assert "best epoch" in capsys.readouterr().out

    query = write_csv([("CCO",), ("bogus",), ("c1ccccc1",)], header=("smiles",), name="q.csv")
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(run), "--data", str(query), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    frame = pd.read_csv(out)
    assert frame["status"].tolist() == ["ok", "skipped", "ok"]
    assert frame["smiles"].tolist()[1] == "bogus"
    assert [c for c in frame.columns if c.startswith("alpha_")] == [f"alpha_{e}" for e in
                                                                     range(1, 6)]  # fmt: skip
    assert (frame.loc[[0, 2], [f"alpha_{e}" for e in range(1, 6)]].gt(0).sum(axis=1) == 1).all()


@pytest.mark.parametrize("gate", ["size", "random"])
def test_the_ablation_gates_train_save_and_predict(gate, train_csv, tmp_path):
    run = tmp_path / gate
    assert main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out", str(run),
                 "--gate", gate, *TINY]) == 0  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"]["gate"] == gate
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(run), "--data", str(train_csv), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    alpha = pd.read_csv(out)[[f"alpha_{e}" for e in range(1, 6)]]
    assert (alpha.gt(0).sum(axis=1) == 2).all()
    if gate == "size":  # molecules with as many atoms (H included) are routed alike
        sizes = [Chem.AddHs(Chem.MolFromSmiles(s)).GetNumAtoms() for s in SMILES]
        groups = alpha.round(6).groupby(sizes).nunique()
        assert (groups == 1).all().all() and len(set(sizes)) < len(SMILES)


def test_atom_attributes_train_record_and_replay_at_prediction(train_csv, tmp_path, capsys):
    run = tmp_path / "attributed"
    assert main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out", str(run),
                 "--atom-attributes", *TINY]) == 0  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"]["atom_attributes"] is True
    out = tmp_path / "pred.csv"  # new molecules: prediction featurizes them with attributes
    new = tmp_path / "new.csv"
    pd.DataFrame({"smiles": ["CCCO", "c1ccncc1", "CC(=O)N"]}).to_csv(new, index=False)
    assert main(["predict", "--model", str(run), "--data", str(new), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert pd.read_csv(out)["logp"].notna().all()
    shards = tmp_path / "shards"
    assert main(["train", "--shards", str(shards), "--out", str(tmp_path / "s"),
                 "--atom-attributes", *TINY]) == 2  # fmt: skip
    assert "shards hold featurized data without them" in capsys.readouterr().err


def test_train_errors_name_the_problem(train_csv, tmp_path, capsys):
    code = main(["train", "--data", str(train_csv), "--target-cols", "logS", "--out",
                 str(tmp_path / "x"), *TINY])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "logS" in err and "logp" in err  # the missing column and the ones that exist
    code = main(["train", "--dataset", "nope", "--out", str(tmp_path / "y"), *TINY])
    assert code == 2 and "freesolv" in capsys.readouterr().err
    code = main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out",
                 str(tmp_path / "z"), "--top-k", "9", *TINY])  # fmt: skip
    assert code == 2 and "top_k" in capsys.readouterr().err


def test_the_cli_trains_memory_lean_experts_with_a_shared_trunk(train_csv, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out", str(run),
                 "--shared-trunk", "--trunk-layers", "2", "--trunk-cutoff", "2.5",
                 *TINY]) == 0  # fmt: skip
    model = json.loads((run / "metrics.json").read_text())["model"]
    assert model["shared_trunk_layers"] == 2 and model["shared_trunk_cutoff"] == 2.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--trunk-layers", "1"], "add it"),
        (["--trunk-cutoff", "2"], "add it"),
        (["--shared-trunk", "--trunk-cutoff", "4.5"], "cutoff must be a number in (0, 4.0]"),
        (["--shared-trunk", "--trunk-layers", "3"], "layers must be a whole number in [1, 2]"),
        (["--shared-trunk", "--variant", "plain"], "routed variant"),
        (["--shared-trunk", "--config", "WIDTHS"], "does not match the experts' hidden_channels"),
    ],
)
def test_the_cli_refuses_what_a_shared_trunk_cannot_do(
    options, message, train_csv, tmp_path, capsys
):
    config = tmp_path / "widths.yaml"
    config.write_text("shared_trunk: {enabled: true, hidden_channels: 64}\n")
    options = [str(config) if o == "WIDTHS" else o for o in options]
    code = main(["train", "--data", str(train_csv), "--target-cols", "logp", "--out",
                 str(tmp_path / "x"), *options, *TINY])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_predict_refuses_a_corrupt_model(train_csv, tmp_path, capsys):
    model = tmp_path / "model.pt"
    model.write_bytes(b"garbage")
    code = main(["predict", "--model", str(model), "--data", str(train_csv), "--out",
                 str(tmp_path / "p.csv"), "--quiet"])  # fmt: skip
    assert code == 2 and "not a readable mimoe checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "predict"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    options = ["--out", "--data"] + (
        ["--backbone", "--variant", "--top-k", "--gate", "--cutoffs", "--epochs", "--batch-size",
         "--device", "--split", "--seed", "--target-cols", "--task", "--smiles-col"]
        if command == "train" else ["--model", "--smiles-col"]
    )  # fmt: skip
    for option in options:
        assert option in text
