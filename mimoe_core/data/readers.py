"""Readers for user files: a CSV of SMILES with labels, and an SDF with 3D coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mimoe_core.atom_attributes import atom_attributes
from mimoe_core.data.table import MoleculeTable, SkipRecord, Structure3D, Task, parse_labels


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")


def _missing_columns_error(
    missing: Sequence[str], columns: Sequence[str], path: Path
) -> ValueError:
    return ValueError(
        f"column(s) {list(missing)} not found in {path.name}; columns that exist: {list(columns)}"
    )


def _record_text(mol) -> tuple[str, dict[str, str]] | None:
    """A record's title and SD properties, or None when they are not UTF-8 text."""
    try:
        title = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
        return title, {name: mol.GetProp(name) for name in mol.GetPropNames()}
    except UnicodeDecodeError:
        return None


def read_csv(
    path: str | Path,
    smiles_col: str = "smiles",
    target_cols: Sequence[str] | None = None,
    task: Task = "regression",
    id_col: str | None = None,
    name: str | None = None,
    polymer: bool = False,
) -> MoleculeTable:
    """Read a CSV (optionally gzip-compressed) with a SMILES column and label columns.

    Args:
        path: The ``.csv`` or ``.csv.gz`` file.
        smiles_col: Column holding SMILES (default ``"smiles"``).
        target_cols: Label columns (regression values, or 0/1 for classification). Empty or
            None reads molecules without labels, for prediction.
        task: ``"regression"`` or ``"classification"``.
        id_col: Optional identifier column; rows are otherwise named by their row number.
        name: Dataset name (default: the file stem).
        polymer: Treat ``*`` atoms as polymer connection points (capped when embedding).

    Returns:
        The table; rows with empty SMILES or bad labels are in ``table.skipped``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Empty file, not UTF-8 text, not parsable as CSV (e.g. an unclosed
            quote), no data rows, or a named column that does not exist (the message lists
            the columns that do).
    """
    path = Path(path)
    _check_file(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path} is empty") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path} is not a readable CSV file: {err}") from None
    target_cols = list(target_cols or [])
    wanted = [smiles_col, *target_cols] + ([id_col] if id_col else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise _missing_columns_error(missing, frame.columns, path)
    if len(frame) == 0:
        raise ValueError(f"{path} has a header but no data rows")
    if len(set(target_cols)) != len(target_cols):
        raise ValueError(f"target columns repeat: {target_cols}")

    smiles = frame[smiles_col].str.strip().tolist()
    ids = frame[id_col].tolist() if id_col else [str(i) for i in range(len(frame))]
    targets, keep, skipped = parse_labels(frame, target_cols, task, ids, smiles)
    skipped_rows = {s.row for s in skipped}
    for i, smi in enumerate(smiles):
        if not smi and i not in skipped_rows:
            skipped.append(SkipRecord(i, ids[i], smi, "empty SMILES"))
            keep[i] = False
    return MoleculeTable.of_kept_rows(
        np.flatnonzero(keep),
        smiles,
        targets,
        ids,
        name=name or path.name.split(".")[0],
        task=task,
        target_names=target_cols,
        n_rows=len(frame),
        skipped=skipped,
        polymer=polymer,
        source=str(path),
    )


def read_sdf(
    path: str | Path,
    target_props: Sequence[str] | None = None,
    task: Task = "regression",
    id_prop: str | None = None,
    name: str | None = None,
) -> MoleculeTable:
    """Read an SDF whose records carry 3D coordinates; properties become targets.

    Coordinates are used as given (no re-embedding) with every atom in the record, explicit
    hydrogens included. A record RDKit cannot read, or one without 3D coordinates, is skipped
    and reported.

    Args:
        path: The ``.sdf`` file.
        target_props: SD properties to use as labels (None: no labels, for prediction).
        task: ``"regression"`` or ``"classification"``.
        id_prop: SD property naming each record (default: the molecule's title line, else the
            record index).
        name: Dataset name (default: the file stem).

    Returns:
        A table whose inputs are :class:`Structure3D`.

    Raises:
        FileNotFoundError, ValueError: No such file, an empty file, or a property named in
            ``target_props`` that no record has (the message lists the ones that exist).
    """
    from rdkit import Chem, RDLogger

    path = Path(path)
    _check_file(path)
    target_props = list(target_props or [])
    RDLogger.DisableLog("rdApp.*")
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
        records = list(supplier)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if not records:
        raise ValueError(f"{path} holds no SDF records")

    read_skips: dict[int, str] = {}
    texts: list[tuple[str, dict[str, str]] | None] = []
    for i, mol in enumerate(records):
        text = _record_text(mol) if mol is not None else None
        if mol is not None and text is None:
            read_skips[i] = "the record's title or properties are not UTF-8 text"
        texts.append(text)
    seen_props: set[str] = set()
    for text in texts:
        if text is not None:
            seen_props.update(text[1])
    missing = [p for p in target_props + ([id_prop] if id_prop else []) if p not in seen_props]
    if missing:
        raise _missing_columns_error(missing, sorted(seen_props), path)

    inputs: list[Structure3D | str] = []
    ids: list[str] = []
    label_rows: list[dict[str, str]] = []
    for i, (mol, text) in enumerate(zip(records, texts, strict=True)):
        if mol is None or text is None:
            inputs.append("")
            ids.append(str(i))
            label_rows.append({})
            read_skips.setdefault(i, "RDKit could not read this SDF record")
            continue
        title, props = text
        has_id = id_prop is not None and id_prop in props
        ids.append(props[id_prop] if has_id else (title or str(i)))
        label_rows.append({p: props.get(p, "") for p in target_props})
        smiles = Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))
        if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
            inputs.append(smiles)
            read_skips[i] = "record has no 3D coordinates (2D or missing conformer)"
            continue
        z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
        pos = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
        attr = atom_attributes(mol, from_3d=True)
        inputs.append(Structure3D(z=z, pos=pos, smiles=smiles, atom_attr=attr))

    described = [x if isinstance(x, str) else x.smiles for x in inputs]
    frame = pd.DataFrame(label_rows, columns=target_props)
    targets, keep, skipped = parse_labels(frame, target_props, task, ids, described)
    # A record that could not be read is reported as such, not as "no label".
    skipped = [s for s in skipped if s.row not in read_skips]
    for i, reason in read_skips.items():
        skipped.append(SkipRecord(i, ids[i], described[i], reason))
        keep[i] = False
    return MoleculeTable.of_kept_rows(
        np.flatnonzero(keep),
        inputs,
        targets,
        ids,
        name=name or path.stem,
        task=task,
        target_names=target_props,
        n_rows=len(records),
        skipped=skipped,
        source=str(path),
    )
