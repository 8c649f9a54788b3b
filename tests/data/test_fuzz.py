"""Fuzz the readers and featurization: any file or SMILES is a clear error or a reported skip.

Whole-file problems (missing, empty, unreadable, no such column) are ``ValueError`` or
``FileNotFoundError`` with a message; everything else becomes kept molecules and skip records
with ``rows in = kept + skipped``. The default run is small; ``-m slow`` runs many more cases.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimoe_core.conformers import ConformerSettings
from mimoe_core.data import read_csv, read_sdf
from mimoe_core.featurization import featurize

# Pieces of SMILES: atoms, brackets, bonds, rings, branches, charges, isotopes, dots, stars.
TOKENS = [
    "C", "c", "N", "n", "O", "o", "S", "P", "F", "Cl", "Br", "I", "B", "H", "[H]", "[2H]",
    "[Na+]", "[Cl-]", "[NH4+]", "[Fe]", "[Fm]", "[Og]", "[*]", "*", "[C@@H]", "[C@H]", "[nH]",
    "[O-]", "[N+]", "[Si]", "[Se]", "=", "#", "$", ":", "/", "\\", "(", ")", "1", "2", "%10",
    ".", "+", "-", "@", "[", "]", " ", "c1ccccc1", "C1CC1", "x", "Xx", "?", ",", '"',
    # whole molecules that once went wrong: explicit hydrogens, elements past the model,
    # salts that are duplicates after stripping
    "[H][H]", "[2H]O[2H]", "C[Fm]", "CC(=O)O.Cl", "CC(=O)O", "CCO", "*CC*", "CCCC",
]  # fmt: skip

SMILES_LIKE = st.lists(st.sampled_from(TOKENS), max_size=8).map("".join)
LABEL = st.one_of(
    st.sampled_from(["", "1", "0", "-2.5", "nan", "inf", "abc", "1e400", " 3 ", "0x1"]),
    st.text(max_size=4),
)
WHOLE_FILE_ERRORS = (ValueError, FileNotFoundError)
QUICK = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MORE = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _featurize_and_account(table, conformer_settings: ConformerSettings, cache_dir: Path) -> None:
    dataset = featurize(table, settings=conformer_settings, n_jobs=1, progress=False,
                        cache_dir=cache_dir)  # fmt: skip
    assert table.n_rows == len(dataset) + len(dataset.skipped)
    kept = sorted([int(d.row) for d in dataset.data_list] + [s.row for s in dataset.skipped])
    assert kept == list(range(table.n_rows))
    assert all(s.reason for s in dataset.skipped)
    for data in dataset.data_list:
        assert data.num_nodes >= 2 and int(data.z.min()) >= 1 and int(data.z.max()) < 100
    if all(isinstance(x, str) for x in table.inputs):  # duplicates: one row per structure
        assert len(set(dataset.smiles)) == len(dataset)


def _write_rows(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "y"])
        writer.writerows(rows)


def _check_csv_smiles(tmp_path: Path, rows, task: str, polymer: bool, fragments: str) -> None:
    path = tmp_path / "fuzz.csv"
    _write_rows(path, rows)
    table = read_csv(path, target_cols=["y"], task=task, polymer=polymer)
    assert table.n_rows == len(rows) == len(table) + len(table.skipped)
    _featurize_and_account(table, ConformerSettings(fragments=fragments), tmp_path / "cache")


def _check_any_file(tmp_path: Path, content: bytes, reader: str) -> None:
    path = tmp_path / ("fuzz.sdf" if reader == "sdf" else "fuzz.csv")
    path.write_bytes(content)
    try:
        if reader == "sdf":
            table = read_sdf(path)
        else:
            table = read_csv(path, smiles_col="smiles")
    except WHOLE_FILE_ERRORS as err:
        # exactly these types (not a bare UnicodeDecodeError or pandas ParserError), with a
        # message that names the file
        assert type(err) in WHOLE_FILE_ERRORS and path.name in str(err)
        return
    assert table.n_rows == len(table) + len(table.skipped)
    _featurize_and_account(table, ConformerSettings(), tmp_path / "cache")


ROWS = st.lists(st.tuples(SMILES_LIKE, LABEL), min_size=1, max_size=5)
TASK = st.sampled_from(["regression", "classification"])
FRAGMENTS = st.sampled_from(["largest", "all"])


def _text_file() -> st.SearchStrategy[bytes]:
    """CSV-ish text: a header that may or may not have ``smiles``, then SMILES-like cells."""
    header = st.sampled_from(["smiles", "smiles,y", "y,smiles", "SMILES", "", "smiles,smiles"])
    line = st.lists(st.one_of(SMILES_LIKE, LABEL), max_size=3).map(",".join)
    body = st.lists(line, max_size=4).map("\n".join)
    return st.tuples(header, body).map(lambda hb: (hb[0] + "\n" + hb[1]).encode())


ANY_BYTES = st.one_of(st.binary(max_size=64), _text_file(), st.text(max_size=64).map(str.encode))


def _sdf_like() -> st.SearchStrategy[bytes]:
    """Pieces of a real SDF record, cut and shuffled, plus random lines."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    writer.write(mol)
    writer.close()
    lines = buffer.getvalue().splitlines()
    pieces = st.lists(st.one_of(st.sampled_from(lines), st.text(max_size=12)), max_size=30)
    shuffled = pieces.map(lambda ls: "\n".join(ls).encode())
    whole = buffer.getvalue().encode()
    # the whole record with a few bytes overwritten (non-UTF-8 titles and properties)
    corrupted = st.lists(
        st.tuples(st.integers(0, len(whole) - 1), st.binary(min_size=1, max_size=2)), max_size=3
    ).map(lambda edits: _overwrite(whole * 2, edits))
    return st.one_of(shuffled, corrupted)


def _overwrite(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for at, new in edits:
        out[at : at + len(new)] = new
    return bytes(out)


@QUICK
@given(rows=ROWS, task=TASK, polymer=st.booleans(), fragments=FRAGMENTS)
def test_random_smiles_never_crash_featurize(tmp_path_factory, rows, task, polymer, fragments):
    _check_csv_smiles(tmp_path_factory.mktemp("fuzz"), rows, task, polymer, fragments)


@QUICK
@given(content=ANY_BYTES, reader=st.sampled_from(["csv", "sdf"]))
def test_random_files_are_clear_errors_or_accounted(tmp_path_factory, content, reader):
    _check_any_file(tmp_path_factory.mktemp("fuzz"), content, reader)


@QUICK
@given(content=_sdf_like())
def test_broken_sdf_records_are_clear_errors_or_accounted(tmp_path_factory, content):
    _check_any_file(tmp_path_factory.mktemp("fuzz"), content, "sdf")


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00s\x00m",  # not UTF-8
        b'smiles\n"CCO',  # an unclosed quote
        b"smiles\nC,C,C\n",  # more cells than the header
        b"\x00\x00\x00",
        b"\n\n\n",
        b"y\n1\n",  # no smiles column
    ],
)
def test_known_bad_csv_files_are_clear_errors(tmp_path, content):
    _check_any_file(tmp_path, content, "csv")


@pytest.mark.slow
@MORE
@given(rows=ROWS, task=TASK, polymer=st.booleans(), fragments=FRAGMENTS)
def test_random_smiles_never_crash_featurize_many(tmp_path_factory, rows, task, polymer, fragments):
    _check_csv_smiles(tmp_path_factory.mktemp("fuzz"), rows, task, polymer, fragments)


@pytest.mark.slow
@MORE
@given(content=st.one_of(ANY_BYTES, _sdf_like()), reader=st.sampled_from(["csv", "sdf"]))
def test_random_files_are_clear_errors_or_accounted_many(tmp_path_factory, content, reader):
    _check_any_file(tmp_path_factory.mktemp("fuzz"), content, reader)
