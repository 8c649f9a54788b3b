"""load_qm9 on tiny CSVs in qm9pack's layout (the real package is optional)."""

import csv
import importlib.util
import json

import numpy as np
import pytest

from mimoe_core.data import Structure3D, load_qm9
from mimoe_core.data.qm9 import qm9_data_dir

COLUMNS = [
    "XYZ_file", "Index", "SMILES", "InChi", "N_atoms", "Stoichiometry", "Elements", "XYZ_Ang",
    "HOMO_au", "LUMO_au", "HOMO_LUMO_gap_au", "Dipole_debye",
]  # fmt: skip

METHANE = (
    ["C", "H", "H", "H", "H"],
    [[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629],
     [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]],
)  # fmt: skip
WATER = (["O", "H", "H"], [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
AMMONIA = (
    ["N", "H", "H", "H"],
    [[0.0, 0.0, 0.12], [0.0, 0.94, -0.27], [0.81, -0.47, -0.27], [-0.81, -0.47, -0.27]],
)


def _row(index, smiles, elements, xyz, gap, elements_text=None, xyz_text=None):
    return {
        "XYZ_file": f"dsgdb9nsd_{index:06d}.xyz",
        "Index": index,
        "SMILES": smiles,
        "InChi": "InChI=1S/x",
        "N_atoms": len(elements),
        "Stoichiometry": "x",
        "Elements": elements_text if elements_text is not None else repr(elements),
        "XYZ_Ang": xyz_text if xyz_text is not None else json.dumps(xyz),
        "HOMO_au": -0.3,
        "LUMO_au": 0.1,
        "HOMO_LUMO_gap_au": gap,
        "Dipole_debye": 1.5,
    }


def _write(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def qm9_dir(tmp_path):
    _write(
        tmp_path / "qm9_part1.csv",
        [_row(1, "C", *METHANE, 0.5), _row(2, "N", *AMMONIA, 0.4)],
    )
    _write(tmp_path / "qm9_part2.csv", [_row(3, "O", *WATER, 0.3)])
    return tmp_path


def test_loads_structures_and_targets(qm9_dir):
    table = load_qm9(data_dir=qm9_dir)
    assert table.name == "qm9" and table.task == "regression"
    assert len(table) == 3 and table.n_rows == 3 and table.skipped == []
    assert table.ids == ["1", "2", "3"]
    assert table.target_names == ["HOMO_LUMO_gap_au"]
    np.testing.assert_array_equal(table.targets[:, 0], [0.5, 0.4, 0.3])
    first = table.inputs[0]
    assert isinstance(first, Structure3D)
    assert first.z.tolist() == [6, 1, 1, 1, 1] and first.smiles == "C"
    np.testing.assert_array_equal(first.pos, METHANE[1])
    assert table.smiles == ["C", "N", "O"]


def test_other_targets_and_limit_across_parts(qm9_dir):
    table = load_qm9(targets=["HOMO_au", "Dipole_debye"], limit=2, data_dir=qm9_dir)
    assert len(table) == 2 and table.targets.shape == (2, 2)
    table = load_qm9(limit=3, data_dir=qm9_dir)
    assert table.ids == ["1", "2", "3"]


def test_bad_records_are_reported(tmp_path):
    _write(
        tmp_path / "qm9_part1.csv",
        [
            _row(1, "C", *METHANE, 0.5),
            _row(2, "[S]", ["S", "H"], [[0, 0, 0], [1.3, 0, 0]], 0.2),
            _row(3, "O", *WATER, 0.3, xyz_text="[[0, 0, 0], [1, 0, 0]]"),
            _row(4, "O", *WATER, 0.3, elements_text="['O', 'H'"),
            _row(5, "O", *WATER, 0.3, xyz_text="not json"),
        ],
    )
    table = load_qm9(data_dir=tmp_path)
    assert table.ids == ["1"] and table.n_rows == 5
    assert [s.row for s in table.skipped] == [1, 2, 3, 4]
    assert all(s.reason.startswith("bad record") for s in table.skipped)
    assert "counts differ" in table.skipped[1].reason


def test_missing_target_lists_numeric_columns(qm9_dir):
    with pytest.raises(ValueError, match="numeric columns") as err:
        load_qm9(targets=["U0"], data_dir=qm9_dir)
    assert "HOMO_LUMO_gap_au" in str(err.value) and "'U0'" in str(err.value)


def test_no_files_and_bad_limit(tmp_path, qm9_dir):
    with pytest.raises(FileNotFoundError, match="qm9_part"):
        load_qm9(data_dir=tmp_path / "nothing")
    with pytest.raises(ValueError, match="limit"):
        load_qm9(limit=0, data_dir=qm9_dir)


def test_featurize_qm9_uses_given_coordinates(qm9_dir, quick_featurize, assert_accounted):
    table = load_qm9(data_dir=qm9_dir)
    dataset = quick_featurize(table)
    assert_accounted(dataset, n_rows=3)
    assert dataset.stats["conformers_computed"] == 0
    np.testing.assert_array_equal(dataset[0].pos.numpy(), np.float32(METHANE[1]))


@pytest.mark.skipif(importlib.util.find_spec("qm9pack") is not None, reason="qm9pack installed")
def test_missing_qm9pack_says_how_to_install():
    with pytest.raises(ImportError, match="pip install"):
        qm9_data_dir()


def test_empty_coordinate_cell_is_reported(tmp_path):
    _write(
        tmp_path / "qm9_part1.csv",
        [_row(1, "C", *METHANE, 0.5), _row(2, "O", *WATER, 0.3, xyz_text="")],
    )
    table = load_qm9(data_dir=tmp_path)
    assert table.ids == ["1"] and [s.row for s in table.skipped] == [1]


def test_missing_target_value_is_reported(tmp_path):
    _write(
        tmp_path / "qm9_part1.csv",
        [_row(1, "C", *METHANE, 0.5), _row(2, "O", *WATER, "")],
    )
    table = load_qm9(data_dir=tmp_path)
    assert table.ids == ["1"] and [s.row for s in table.skipped] == [1]
