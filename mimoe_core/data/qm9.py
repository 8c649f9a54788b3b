"""QM9 with its DFT geometries, from the optional ``qm9pack`` package.

Install it with ``pip install 'mimoe[qm9]'`` (pins ``qm9pack==1.0.3``, a 104 MB wheel of CSVs).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from importlib import util as importlib_util
from pathlib import Path

import numpy as np
import pandas as pd

from mimoe_core.data.table import MoleculeTable, SkipRecord, Structure3D, parse_labels

QM9_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
QM9_DEFAULT_TARGETS = ("HOMO_LUMO_gap_au",)
_SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


def qm9_data_dir() -> Path:
    """The folder holding qm9pack's CSV files.

    Raises:
        ImportError: qm9pack is not installed (the message says how to install it).
    """
    # find_spec locates the package without importing it (its __init__ needs pkg_resources).
    spec = importlib_util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "QM9 needs the optional package qm9pack: pip install 'mimoe[qm9]' "
            "(or pip install qm9pack==1.0.3)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_qm9(
    targets: Sequence[str] = QM9_DEFAULT_TARGETS,
    limit: int | None = None,
    data_dir: str | Path | None = None,
) -> MoleculeTable:
    """QM9 molecules with their DFT coordinates (Å), used as given.

    Energies stay in the units of the source (Hartree, column suffix ``_au``).

    Args:
        targets: Numeric columns of qm9pack's CSVs, e.g. ``HOMO_LUMO_gap_au``, ``HOMO_au``,
            ``LUMO_au``, ``Dipole_debye``, ``InternalEnergy_0K_au``.
        limit: Read only the first ``limit`` molecules (in QM9 index order).
        data_dir: A folder with ``qm9_part*.csv`` in qm9pack's layout (default: the
            installed package's).

    Returns:
        A regression table whose inputs are :class:`Structure3D`.
    """
    folder = Path(data_dir) if data_dir is not None else qm9_data_dir()
    parts = [folder / name for name in QM9_PARTS if (folder / name).exists()]
    if not parts:
        raise FileNotFoundError(f"no qm9_part*.csv files in {folder}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of molecules, got {limit}")
    frames, remaining = [], limit
    for part in parts:
        frame = pd.read_csv(part, nrows=remaining)
        frames.append(frame)
        if remaining is not None:
            remaining -= len(frame)
            if remaining <= 0:
                break
    frame = pd.concat(frames, ignore_index=True)
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        raise ValueError(f"QM9 has no column(s) {missing}; numeric columns: {numeric}")

    target_names = list(targets)
    ids = [str(x) for x in frame["Index"]]
    smiles = [str(x) for x in frame["SMILES"]]
    labels, has_label, skipped = parse_labels(frame, target_names, "regression", ids, smiles)
    inputs: list[Structure3D | None] = [None] * len(frame)
    keep = []
    for i, record in enumerate(frame.to_dict("records")):
        if not has_label[i]:
            continue
        try:
            symbols = ast.literal_eval(record["Elements"])
            z = np.array([_SYMBOLS[s] for s in symbols], dtype=np.int64)
            pos = np.asarray(json.loads(record["XYZ_Ang"]), dtype=np.float64).reshape(-1, 3)
            if len(z) != len(pos):
                raise ValueError("element and coordinate counts differ")
        except (ValueError, KeyError, SyntaxError, TypeError) as err:
            skipped.append(SkipRecord(i, ids[i], smiles[i], f"bad record: {err}"))
            continue
        inputs[i] = Structure3D(z=z, pos=pos, smiles=smiles[i])
        keep.append(i)
    return MoleculeTable.of_kept_rows(
        keep,
        inputs,
        labels,
        ids,
        name="qm9",
        task="regression",
        target_names=target_names,
        n_rows=len(frame),
        skipped=skipped,
        source=str(folder),
    )
