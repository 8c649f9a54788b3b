"""read_csv and MoleculeTable: columns, labels, masks and the row accounting at read time."""

import gzip

import numpy as np
import pytest

from mimoe_core.data import MoleculeTable, read_csv
from mimoe_core.data.table import SkipRecord, skipped_frame


def test_reads_smiles_labels_and_ids(write_csv):
    path = write_csv(
        [["a", "CCO", "1.5"], ["b", "c1ccccc1", "-2"], ["c", "O", "0"]],
        header=("name", "smiles", "y"),
    )
    table = read_csv(path, target_cols=["y"], id_col="name")
    assert len(table) == 3 and table.n_rows == 3 and table.skipped == []
    assert table.inputs == ["CCO", "c1ccccc1", "O"]
    assert table.ids == ["a", "b", "c"]
    assert table.rows.tolist() == [0, 1, 2]
    assert table.targets.dtype == np.float64
    np.testing.assert_array_equal(table.targets[:, 0], [1.5, -2.0, 0.0])
    assert table.name == "data" and table.source == str(path)
    assert table.task == "regression" and table.target_names == ["y"]
    assert "molecules=3" in repr(table)


def test_custom_smiles_column_and_name(write_csv):
    path = write_csv([["CCO", "1"]], header=("SMILES", "logS"))
    table = read_csv(path, smiles_col="SMILES", target_cols=["logS"], name="mine")
    assert table.name == "mine" and table.smiles == ["CCO"]
    assert table.ids == ["0"]


def test_gzip_csv(tmp_path):
    path = tmp_path / "tiny.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("smiles,y\nCCO,1\nCC,2\n")
    table = read_csv(path, target_cols=["y"])
    assert table.name == "tiny" and len(table) == 2


def test_no_targets_reads_molecules_for_prediction(write_csv):
    path = write_csv([["CCO"], ["CC"]], header=("smiles",))
    table = read_csv(path)
    assert len(table) == 2 and table.targets.shape == (2, 0) and table.skipped == []


def test_multitask_missing_labels_are_masked_not_zero(write_csv):
    path = write_csv(
        [["CCO", "1", ""], ["CC", "", "0"], ["CCC", "NaN", "1"], ["CCCC", "", ""]],
        header=("smiles", "a", "b"),
    )
    table = read_csv(path, target_cols=["a", "b"], task="classification")
    assert len(table) == 3 and table.n_rows == 4
    np.testing.assert_array_equal(table.mask, [[True, False], [False, True], [False, True]])
    assert np.isnan(table.targets[0, 1]) and np.isnan(table.targets[1, 0])
    assert table.targets[1, 1] == 0.0 and table.targets[2, 1] == 1.0
    (skip,) = table.skipped
    assert skip.row == 3 and skip.input == "CCCC"
    assert "no label" in skip.reason


@pytest.mark.parametrize(
    ("label", "expected"),
    [("abc", "is not a number"), ("1,5", "is not a number"), ("", "no label")],
)
def test_bad_regression_label_is_reported(write_csv, label, expected):
    path = write_csv([["CCO", "1"], ["CC", label]])
    table = read_csv(path, target_cols=["y"])
    assert len(table) == 1 and table.n_rows == 2
    (skip,) = table.skipped
    assert skip.row == 1 and expected in skip.reason
    if label:
        assert repr(label) in skip.reason and "'y'" in skip.reason


@pytest.mark.parametrize("label", ["2", "0.5", "-1"])
def test_classification_label_must_be_0_or_1(write_csv, label):
    path = write_csv([["CCO", "1"], ["CC", label], ["CCC", "0.0"]])
    table = read_csv(path, target_cols=["y"], task="classification")
    assert table.targets[:, 0].tolist() == [1.0, 0.0]
    (skip,) = table.skipped
    assert skip.row == 1 and "is not 0 or 1" in skip.reason


def test_labels_with_spaces_are_numbers(write_csv):
    path = write_csv([["CCO", " 1.5 "]])
    assert read_csv(path, target_cols=["y"]).targets[0, 0] == 1.5


def test_empty_smiles_is_reported(write_csv):
    path = write_csv([["CCO", "1"], ["", "2"], ["   ", "3"]])
    table = read_csv(path, target_cols=["y"])
    assert len(table) == 1
    assert [(s.row, s.reason) for s in table.skipped] == [(1, "empty SMILES"), (2, "empty SMILES")]


def test_missing_column_names_existing_columns(write_csv):
    path = write_csv([["CCO", "1"]], header=("smiles", "logS"))
    with pytest.raises(ValueError, match="columns that exist") as err:
        read_csv(path, target_cols=["expt"])
    assert "expt" in str(err.value) and "'smiles'" in str(err.value) and "'logS'" in str(err.value)
    with pytest.raises(ValueError, match="'SMILES'"):
        read_csv(path, smiles_col="SMILES")
    with pytest.raises(ValueError, match="'id'"):
        read_csv(path, target_cols=["logS"], id_col="id")


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_csv(path, target_cols=["y"])


def test_blank_lines_only_file_is_an_error(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        read_csv(path)


def test_header_only_file_is_an_error(write_csv):
    path = write_csv([])
    with pytest.raises(ValueError, match="no data rows"):
        read_csv(path, target_cols=["y"])


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_csv(tmp_path / "nope.csv")


def test_repeated_target_columns_are_an_error(write_csv):
    path = write_csv([["CCO", "1"]])
    with pytest.raises(ValueError, match="repeat"):
        read_csv(path, target_cols=["y", "y"])


def test_polymer_flag_is_carried(write_csv):
    path = write_csv([["*CC*", "1"]])
    assert read_csv(path, target_cols=["y"], polymer=True).polymer
    assert not read_csv(path, target_cols=["y"]).polymer


def test_table_validates_shapes_and_task():
    with pytest.raises(ValueError, match="task"):
        MoleculeTable("x", "ranking", [], ["C"], np.zeros((1, 0)), np.zeros(1), ["0"], 1)
    with pytest.raises(ValueError, match="shape"):
        MoleculeTable("x", "regression", ["y"], ["C"], np.zeros((2, 1)), np.zeros(1), ["0"], 1)
    with pytest.raises(ValueError, match="same length"):
        MoleculeTable("x", "regression", ["y"], ["C"], np.zeros((1, 1)), np.zeros(2), ["0"], 1)


def test_head_keeps_the_row_accounting(write_csv):
    path = write_csv([["CCO", "1"], ["CC", "x"], ["CCC", "2"], ["", "3"], ["CCCC", "4"]])
    table = read_csv(path, target_cols=["y"])
    assert table.n_rows == len(table) + len(table.skipped) == 5
    head = table.head(2)
    assert head.inputs == ["CCO", "CCC"] and head.rows.tolist() == [0, 2]
    assert [s.row for s in head.skipped] == [1]
    assert head.n_rows == len(head) + len(head.skipped) == 3
    assert table.head(10) is table
    empty = table.head(0)
    assert len(empty) == 0 and empty.n_rows == 0


def test_sample_is_seeded_in_source_order_and_consistent(write_csv):
    rows = [[s, str(i)] for i, s in enumerate(["C", "CC", "CCC", "CCCC", "CCO", "CCN", "CO"])]
    table = read_csv(write_csv(rows), target_cols=["y"])
    sub = table.sample(4, seed=3)
    assert len(sub) == 4 and sub.n_rows == 4 and sub.skipped == []
    source = [int(i) for i in sub.ids]  # ids name the source rows (no id column)
    assert source == sorted(source) and sub.rows.tolist() == [0, 1, 2, 3]
    for smiles, row, label in zip(sub.inputs, source, sub.targets[:, 0], strict=True):
        assert table.inputs[row] == smiles and label == row
    assert table.sample(4, seed=3).ids == sub.ids
    assert table.sample(4, seed=4).ids != sub.ids
    assert table.sample(10) is table


def test_skipped_frame_is_sorted_by_row():
    frame = skipped_frame([SkipRecord(5, "e", "C", "b"), SkipRecord(1, "a", "O", "a")])
    assert list(frame.columns) == ["row", "mol_id", "input", "reason"]
    assert frame["row"].tolist() == [1, 5]
    assert list(skipped_frame([]).columns) == ["row", "mol_id", "input", "reason"]


def test_non_finite_label_is_reported_as_such(write_csv):
    path = write_csv([["CCO", "1", "inf"], ["CC", "2", "3"]], header=("smiles", "a", "b"))
    table = read_csv(path, target_cols=["a", "b"])
    (skip,) = table.skipped
    assert skip.row == 0 and "'inf'" in skip.reason


def test_short_row_is_an_empty_smiles(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("id,smiles\na,CCO\nb\nc,CC\n")
    table = read_csv(path, id_col="id")
    assert table.inputs == ["CCO", "CC"]
    assert [(s.row, s.mol_id, s.reason) for s in table.skipped] == [(1, "b", "empty SMILES")]


def test_sample_renumbers_rows_so_the_table_stays_consistent(write_csv):
    smiles = ["C", "CC", "CCC", "CCCC", "CCO", "CCN", "CO"]
    rows = [[s, str(i) if i != 1 else "bad"] for i, s in enumerate(smiles)]  # label = row
    table = read_csv(write_csv(rows), target_cols=["y"])
    assert len(table.skipped) == 1
    sub = table.sample(4, seed=3)
    assert sub.n_rows == len(sub) + len(sub.skipped) == 4
    assert sub.rows.tolist() == [0, 1, 2, 3]
    for k in range(4):  # ids still name the source row; each entry keeps its input and label
        source = int(sub.ids[k])
        assert smiles[source] == sub.inputs[k] and sub.targets[k, 0] == source
    assert [int(i) for i in sub.ids] == sorted(int(i) for i in sub.ids)


def test_table_rows_must_lie_inside_n_rows():
    with pytest.raises(ValueError, match="rows"):
        MoleculeTable("x", "regression", [], ["C"], np.zeros((1, 0)), np.array([3]), ["0"], 1)
    with pytest.raises(ValueError, match="rows"):
        MoleculeTable(
            "x", "regression", [], ["C", "O"], np.zeros((2, 0)), np.zeros(2), ["0", "1"], 2
        )


def test_predict_on_a_sampled_table(write_csv):
    from mimoe_core.conformers import ConformerSettings
    from mimoe_core.inference import predict
    from mimoe_core.models import create_model
    from mimoe_core.topology import DEFAULT_RADII
    from mimoe_core.trained import TrainedModel
    from mimoe_core.training import ScaledMIMoE, TargetScaler

    smiles = ["C", "CC", "CCC", "CCCC", "CCO", "CCN", "CO", "xx", "OCCO"]
    table = read_csv(write_csv([[s, str(i)] for i, s in enumerate(smiles)]), target_cols=["y"])
    sub = table.sample(4, seed=0)
    assert "xx" in sub.inputs  # a skip inside the sample, reported at its own row
    model = create_model({"expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8,
                                     "num_rbf": 10}, "gate": {"hidden_channels": 8}})  # fmt: skip
    ckpt = TrainedModel(ScaledMIMoE(model, TargetScaler([0.0], [1.0])).eval(), "regression",
                        ["y"], list(DEFAULT_RADII), ConformerSettings())  # fmt: skip
    result = predict(ckpt, sub, n_jobs=1, device="cpu")
    assert len(result.rows) == sub.n_rows == 4
    assert result.ids == sub.ids and result.rows == [0, 1, 2, 3]
    for k, smi in enumerate(sub.inputs):
        assert result.smiles[k] == smi  # the inputs are canonical already
        assert result.status[k] == ("skipped" if smi == "xx" else "ok")
        assert np.isfinite(result.prediction[k]).all() == (smi != "xx")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"smiles\n\xff\xfeCCO\n", "not UTF-8 text"), (b'smiles,y\n"CCO,1\n', "not a readable CSV")],
)
def test_unreadable_csv_is_a_clear_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as err:
        read_csv(path)
    assert type(err.value) is ValueError and "broken.csv" in str(err.value)
