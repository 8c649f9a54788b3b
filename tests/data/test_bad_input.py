"""Every bad-input case through ``featurize(read_csv(...))``: a clear error or a reported skip.

Each test checks the reason text and the accounting (rows in = rows kept + rows reported).
"""

import numpy as np
import pytest

from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import read_csv

FE_COMPLEX = "C(#N)[Fe-2](C#N)(C#N)(C#N)(C#N)N=O"  # from the bundled clintox; ETKDG fails


@pytest.fixture
def run(write_csv, quick_featurize, assert_accounted):
    """``run(rows, **options) -> dataset``: write rows, read, featurize, check the accounting.

    Options ``target_cols``, ``task``, ``polymer`` and ``header`` go to the reader; the rest to
    ``featurize``.
    """

    def _run(rows, header=("smiles", "y"), target_cols=("y",), task="regression",
             polymer=False, **featurize_options):  # fmt: skip
        path = write_csv(rows, header=header)
        table = read_csv(path, target_cols=list(target_cols), task=task, polymer=polymer)
        dataset = quick_featurize(table, **featurize_options)
        assert_accounted(dataset, n_rows=len(rows))
        return dataset

    return _run


def _reasons(dataset) -> dict[int, str]:
    return {s.row: s.reason for s in dataset.skipped}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("C1CC", "invalid SMILES 'C1CC': RDKit cannot parse it"),
        ("c1cccc1", "c1cccc1"),  # non-kekulizable aromatic ring: RDKit sanitization rejects it
        ("Xx", "invalid SMILES"),
        ("", "empty SMILES"),
        ("C[N](C)(C)(C)C", "Explicit valence for atom # 1 N"),
        (FE_COMPLEX, "3D embedding failed"),
        ("[Na+]", "single atom or ion"),
        ("[Cl-]", "single atom or ion"),
        ("*CC*", "outside a polymer dataset"),
    ],
)
def test_bad_molecule_is_skipped_with_reason(run, bad, reason):
    dataset = run([["CCO", "1"], [bad, "2"], ["c1ccccc1", "3"]])
    assert len(dataset) == 2 and [d.row for d in dataset.data_list] == [0, 2]
    (skip,) = dataset.skipped
    assert skip.row == 1 and skip.input == bad and skip.mol_id == "1"
    assert reason in skip.reason


def test_rejected_aromatic_ring_reason_names_rdkit():
    from mimoe_core.conformers import MoleculeRejected, parse_smiles

    with pytest.raises(MoleculeRejected, match="RDKit rejects 'c1cccc1'"):
        parse_smiles("c1cccc1")


def test_salt_keeps_largest_fragment(run):
    dataset = run([["CC(=O)[O-].[Na+]", "1"], ["CCO", "2"]])
    assert len(dataset) == 2 and dataset.skipped == []
    assert dataset.conformers[0]["n_fragments"] == 2
    assert dataset[0].smiles == "CC(=O)[O-]" and 11 not in dataset[0].z.tolist()
    assert dataset.summary()["multi_fragment_inputs"] == 1


def test_salt_with_all_fragments(run):
    dataset = run([["CC(=O)[O-].[Na+]", "1"]], settings=ConformerSettings(fragments="all"))
    assert dataset[0].num_nodes == 8 and 11 in dataset[0].z.tolist()


def test_polymer_methyl_and_hydrogen_caps(run):
    rows = [["*CC*", "1"], ["*CC(*)c1ccccc1", "2"]]
    methyl = run(rows, polymer=True)
    assert methyl.smiles == ["CCCC", "CCC(C)c1ccccc1"]
    assert all(0 not in d.z.tolist() for d in methyl.data_list)
    hydrogen = run(rows, polymer=True, settings=ConformerSettings(polymer_cap="hydrogen"))
    assert hydrogen.smiles == ["CC", "CCc1ccccc1"]


def test_over_max_atoms(run):
    dataset = run([["CCCC", "1"], ["CCCCCCCC", "2"]], settings=ConformerSettings(max_atoms=20))
    assert _reasons(dataset) == {1: "26 atoms is more than max_atoms=20"}
    assert dataset[0].num_nodes == 14


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("", "no label: every target column is empty"),
        ("NaN", "no label: every target column is empty"),
        ("nan", "no label: every target column is empty"),
        ("abc", "label 'abc' in column 'y' is not a number"),
        ("1.2.3", "label '1.2.3' in column 'y' is not a number"),
    ],
)
def test_bad_regression_label(run, label, reason):
    dataset = run([["CCO", "1"], ["CC", label]])
    assert _reasons(dataset) == {1: reason}


def test_classification_label_not_0_or_1(run):
    dataset = run([["CCO", "1"], ["CC", "2"], ["CCC", "0"]], task="classification")
    assert _reasons(dataset) == {1: "classification label 2 in column 'y' is not 0 or 1"}
    assert [d.y.item() for d in dataset.data_list] == [1.0, 0.0]


def test_duplicate_smiles_by_canonical_form(run):
    dataset = run([["OCC", "1"], ["CC", "2"], ["CCO", "1"], ["C(O)C", "4"]])
    assert _reasons(dataset) == {
        2: "duplicate of row 0 (same canonical SMILES)",
        3: "duplicate of row 0 (same canonical SMILES) with different labels",
    }
    assert dataset[0].y.item() == 1.0  # the first occurrence is kept


def test_duplicates_kept_when_asked(run):
    dataset = run([["OCC", "1"], ["CCO", "3"]], drop_duplicates=False)
    assert len(dataset) == 2
    np.testing.assert_array_equal(dataset[0].pos, dataset[1].pos)


def test_multitask_missing_labels_are_masked(run):
    rows = [["CCO", "1", ""], ["CC", "", "0.5"], ["CCC", "", ""], ["CCCC", "2", "3"]]
    dataset = run(rows, header=("smiles", "a", "b"), target_cols=("a", "b"))
    assert _reasons(dataset) == {2: "no label: every target column is empty"}
    first, second, last = dataset.data_list
    assert first.y_mask.tolist() == [[True, False]] and second.y_mask.tolist() == [[False, True]]
    assert first.y[0, 0].item() == 1.0 and np.isnan(first.y[0, 1].item())  # never a fake 0
    assert np.isnan(second.y[0, 0].item()) and second.y[0, 1].item() == 0.5
    assert last.y_mask.all()
    assert dataset.summary()["labels_present"] == [2, 2]


def test_missing_column_lists_existing_columns(write_csv):
    path = write_csv([["CCO", "1"]], header=("SMILES", "logS"))
    with pytest.raises(ValueError, match=r"columns that exist: \['SMILES', 'logS'\]"):
        read_csv(path, target_cols=["logS"])


def test_empty_and_header_only_files(tmp_path, write_csv):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_csv(empty, target_cols=["y"])
    with pytest.raises(ValueError, match="no data rows"):
        read_csv(write_csv([]), target_cols=["y"])


def test_many_bad_rows_at_once_are_all_reported(run, tmp_path):
    rows = [
        ["CCO", "1"],
        ["C1CC", "2"],
        ["", "3"],
        ["[Na+]", "4"],
        ["OCC", "5"],
        ["CC", "x"],
        ["CC(=O)[O-].[Na+]", "6"],
        ["*C*", "7"],
        ["C", ""],
        ["c1ccccc1", "8"],
    ]
    dataset = run(rows)
    assert [d.row for d in dataset.data_list] == [0, 6, 9]
    assert sorted(_reasons(dataset)) == [1, 2, 3, 4, 5, 7, 8]
    assert dataset.summary_line() == "data: 10 rows -> 3 molecules kept, 7 skipped"
    dataset.write_report(tmp_path / "report")
    import pandas as pd

    skipped = pd.read_csv(tmp_path / "report" / "skipped.csv", keep_default_na=False)
    assert skipped["row"].tolist() == [1, 2, 3, 4, 5, 7, 8]
    assert skipped["reason"].tolist() == [_reasons(dataset)[r] for r in skipped["row"]]


# --- audit: duplicates on the embedded structure, explicit hydrogens, elements past the model


def test_duplicates_are_found_after_salt_stripping(run):
    rows = [["CCO", "5"], ["CC(=O)O.Cl", "1"], ["CC(=O)O", "1"], ["Cl.CC(=O)O", "2"]]
    dataset = run(rows)
    assert _reasons(dataset) == {
        2: "duplicate of row 1 (same structure after salt stripping)",
        3: "duplicate of row 1 (same canonical SMILES) with different labels",
    }
    assert dataset.smiles == ["CCO", "CC(=O)O"]
    assert dataset[1].y.item() == 1.0  # the first occurrence is kept, with its own label


def test_duplicate_with_different_labels_says_so(run):
    dataset = run([["CC(=O)[O-].[Na+]", "1"], ["CC(=O)[O-].[K+]", "3"], ["OCC", "2"]])
    assert _reasons(dataset) == {
        1: "duplicate of row 0 (same structure after salt stripping) with different labels"
    }


def test_duplicates_honour_the_fragments_setting(run):
    rows = [["CC(=O)O.Cl", "1"], ["CC(=O)O", "1"]]
    dataset = run(rows, settings=ConformerSettings(fragments="all"))
    assert dataset.skipped == [] and len(dataset) == 2


def test_duplicates_after_polymer_capping(run):
    # *CC* and *CCCC* differ as repeat units; with methyl caps *C* and CC-capped forms meet.
    dataset = run([["*CC*", "1"], ["CCCC", "2"]], polymer=True)
    assert _reasons(dataset) == {
        1: "duplicate of row 0 (same structure after capping '*') with different labels"
    }


@pytest.mark.parametrize(
    ("smiles", "z"), [("[H][H]", [1, 1]), ("[2H]O[2H]", [8, 1, 1]), ("[H]O[H]", [8, 1, 1])]
)
def test_explicit_hydrogen_molecules_are_kept(run, smiles, z):
    dataset = run([[smiles, "1"], ["CCO", "2"]])
    assert dataset.skipped == [] and sorted(dataset[0].z.tolist()) == sorted(z)
    assert dataset.conformers[0]["force_field"] in ("mmff94", "uff")


def test_explicit_hydrogen_molecules_without_hydrogens_are_single_atoms(run):
    dataset = run([["[H][H]", "1"], ["[2H]O[2H]", "2"], ["CCO", "3"]],
                  settings=ConformerSettings(hydrogens=False))  # fmt: skip
    reasons = _reasons(dataset)
    assert set(reasons) == {0, 1}
    assert all("single atom" in r or "no heavy atom" in r for r in reasons.values())


@pytest.mark.parametrize(("smiles", "symbol", "z"), [("C[Fm]", "Fm", 100), ("[Og]C", "Og", 118)])
def test_elements_past_the_model_embedding_are_rejected(run, smiles, symbol, z):
    dataset = run([[smiles, "1"], ["C[Es]", "2"]])  # Es (99) is the last element embedded
    (skip,) = dataset.skipped
    assert skip.row == 0
    assert f"{symbol} (atomic number {z})" in skip.reason and "100" in skip.reason
    assert 99 in dataset[0].z.tolist()
