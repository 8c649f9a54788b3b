"""The ``mimoe`` command line: datasets, featurize, and its error messages."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mimoe_core.cli import build_parser, main
from mimoe_core.data import BUNDLED, Split
from mimoe_core.featurization import CACHE_FILE
from mimoe_core.topology import DEFAULT_RADII, DESCRIPTOR_NAMES

ROWS = [
    ["m0", "CCO", "1.0", "0"],
    ["m1", "C1CC", "2.0", "1"],
    ["m2", "c1ccccc1", "3.0", ""],
    ["m3", "OCC", "4.0", "1"],
    ["m4", "CC(=O)O", "", ""],
    ["m5", "CCN", "5.0", "0"],
    ["m6", "CCCl", "6.0", "1"],
]
HEADER = ("name", "smiles", "a", "b")


def _featurize(csv_path, out, *extra):
    argv = ["featurize", "--data", str(csv_path), "--target-cols", "a,b", "--id-col", "name",
            "--out", str(out), "--quiet", "--jobs", "1", *extra]  # fmt: skip
    return main(argv)


def test_datasets_lists_every_bundled_name(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert name in out
    assert "qm9" in out


def test_featurize_writes_the_report(write_csv, tmp_path, capsys, cache_dir):
    path = write_csv(ROWS, header=HEADER)
    out = tmp_path / "out"
    assert _featurize(path, out) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0] == "data: 7 rows -> 4 molecules kept, 3 skipped"
    for name in ("summary.json", "molecules.csv", "descriptors.npz", "skipped.csv", "splits.json"):
        assert (out / name).exists(), name
    assert (cache_dir / CACHE_FILE).exists()

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["rows"], summary["kept"], summary["skipped"]) == (7, 4, 3)
    assert summary["targets"] == ["a", "b"] and summary["labels_present"] == [4, 3]

    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped["row"].tolist() == [1, 3, 4]
    assert skipped["mol_id"].tolist() == ["m1", "m3", "m4"]
    assert "invalid SMILES" in skipped["reason"][0]
    assert "duplicate of row 0" in skipped["reason"][1]
    assert "no label" in skipped["reason"][2]

    molecules = pd.read_csv(out / "molecules.csv")
    assert molecules["row"].tolist() == [0, 2, 5, 6]
    assert molecules["mol_id"].tolist() == ["m0", "m2", "m5", "m6"]
    assert molecules["num_atoms"].tolist() == [9, 12, 10, 8]
    assert set(molecules["force_field"]) == {"mmff94"}
    assert molecules["converged"].dtype == bool and molecules["converged"].all()

    with np.load(out / "descriptors.npz") as npz:
        assert npz["trajectories"].shape == (4, len(DEFAULT_RADII), len(DESCRIPTOR_NAMES))
        assert npz["rows"].tolist() == [0, 2, 5, 6]
        assert npz["names"].tolist() == list(DESCRIPTOR_NAMES)
        np.testing.assert_allclose(npz["radii"], DEFAULT_RADII)

    split = Split.load(out / "splits.json")
    assert split.method == "scaffold"
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == [0, 1, 2, 3]
    rows = json.loads((out / "splits.json").read_text())
    assert sorted(rows["train_rows"] + rows["val_rows"] + rows["test_rows"]) == [0, 2, 5, 6]


def test_featurize_options_reach_the_settings(write_csv, tmp_path, capsys):
    path = write_csv(ROWS, header=HEADER)
    out = tmp_path / "out"
    extra = ["--no-hydrogens", "--conformer-seed", "4", "--max-atoms", "3", "--no-cache",
             "--split", "random", "--seed", "2"]  # fmt: skip
    assert _featurize(path, out, *extra) == 0
    summary = json.loads((out / "summary.json").read_text())
    settings = summary["conformer_settings"]
    assert settings["hydrogens"] is False and settings["seed"] == 4 and settings["max_atoms"] == 3
    assert summary["kept"] == 3  # benzene (6 heavy atoms) is over max_atoms now
    assert json.loads((out / "splits.json").read_text())["method"] == "random"


@pytest.mark.parametrize("flag", [[], ["--retry-timeouts"]])
def test_retry_timeouts_reaches_featurization(flag, write_csv, tmp_path, monkeypatch, capsys):
    from mimoe_core import featurization

    real, seen = featurization.featurize, []

    def recording(table, *args, **kwargs):
        seen.append(kwargs["retry_timeouts"])
        return real(table, *args, **kwargs)

    monkeypatch.setattr(featurization, "featurize", recording)
    assert _featurize(write_csv(ROWS, header=HEADER), tmp_path / "out", "--no-cache", *flag) == 0
    assert seen == [bool(flag)]


def test_featurize_a_bundled_dataset(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["featurize", "--dataset", "freesolv", "--limit", "4", "--out", str(out), "--quiet",
            "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("freesolv: 4 rows -> 4 molecules kept, 0 skipped")


def test_too_few_molecules_for_a_split(write_csv, tmp_path, capsys):
    path = write_csv([["CCO", "1"], ["CC", "2"]])
    out = tmp_path / "out"
    argv = ["featurize", "--data", str(path), "--target-cols", "y", "--out", str(out),
            "--quiet", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "skipped.csv").exists() and not (out / "splits.json").exists()


def test_stdout_names_only_files_written(write_csv, tmp_path, capsys):
    path = write_csv([["CCO", "1"], ["CC", "2"]])
    argv = ["featurize", "--data", str(path), "--target-cols", "y", "--out", str(tmp_path / "o"),
            "--quiet", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert "splits.json" not in capsys.readouterr().out


def test_unknown_dataset_is_exit_2_with_names(tmp_path, capsys):
    assert main(["featurize", "--dataset", "toxcast", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mimoe featurize: error: unknown dataset 'toxcast'")
    for name in BUNDLED:
        assert name in err


def test_missing_column_is_exit_2_with_columns(write_csv, tmp_path, capsys):
    path = write_csv(ROWS, header=HEADER)
    argv = ["featurize", "--data", str(path), "--target-cols", "logS", "--out", str(tmp_path),
            "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "logS" in err and "['name', 'smiles', 'a', 'b']" in err


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--data", "nope.csv"], "no such file"),
        (["--data", "table.xlsx"], "must be a .csv"),
        (["--dataset", "esol", "--target-cols", "x"], "--target-cols goes with --data"),
    ],
)
def test_input_errors_are_exit_2(tmp_path, capsys, argv_tail, message):
    (tmp_path / "table.xlsx").write_text("x")
    argv_tail = [str(tmp_path / a) if a.endswith((".csv", ".xlsx")) else a for a in argv_tail]
    assert main(["featurize", *argv_tail, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_empty_file_is_exit_2(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert main(["featurize", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "empty" in capsys.readouterr().err


def test_parser_needs_a_command_and_a_source(capsys):
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args([])
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["featurize", "--out", "x"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["featurize", "--data", "a.csv", "--dataset", "esol"])


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "mimoe_core", "featurize", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: mimoe featurize" in result.stdout and "--target-cols" in result.stdout


def test_the_parser_and_help_need_no_torch():
    # `mimoe --help`, `mimoe train --help` and a usage error answer in about a second: the
    # parser takes the model names from mimoe_core.constants, not from the models package.
    code = (
        "import sys\n"
        "from mimoe_core.cli import build_parser\n"
        "build_parser().parse_args(['train', '--dataset', 'esol', '--backbone', 'painn',\n"
        "                           '--gate', 'transformer', '--variant', 'dense', '--out', 'x'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}\n"
        "             & {'torch', 'torch_geometric', 'rdkit', 'scipy', 'sklearn', 'gudhi'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_featurize_an_sdf(tmp_path, capsys):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(path))
    for i, smiles in enumerate(["CCO", "CCN", "CCC"]):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=i + 1)
        mol.SetProp("_Name", f"mol{i}")
        mol.SetProp("energy", str(float(i)))
        writer.write(mol)
    writer.close()
    out = tmp_path / "out"
    argv = ["featurize", "--data", str(path), "--target-cols", "energy", "--out", str(out),
            "--quiet", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    molecules = pd.read_csv(out / "molecules.csv")
    assert molecules["mol_id"].tolist() == ["mol0", "mol1", "mol2"]
    assert set(molecules["embedding"]) == {"given"}
