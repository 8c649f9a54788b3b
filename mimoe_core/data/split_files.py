"""Splits read from a file of source rows: chemprop's ``splits.json`` and this project's own.

A split file names, for each of train/val/test, 0-based data rows of the input file. Two
layouts are read:

- chemprop 2.x: a JSON list holding one object ``{"train": [...], "val": [...], "test": [...]}``
  of row indices (one object per replicate; pass a file with the one you want);
- mimoe's ``splits.json`` (written by every run): its ``train_rows``/``val_rows``/
  ``test_rows`` lists, so ``--split-file RUN/splits.json`` repeats that run's split exactly.

Rows that did not become molecules (skipped when read or featurized) are dropped from their
part and counted; a file whose parts overlap, repeat a row, or name a row the input does not
have is an error that says which rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mimoe_core.data.splits import Split

PARTS = ("train", "val", "test")

__all__ = ["read_split_file", "split_from_file"]


def read_split_file(path: str | Path) -> tuple[dict[str, np.ndarray], str]:
    """The source rows of each part in a split file, and its layout (``chemprop``/``mimoe``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not one of the two layouts, or indices that are not
            non-negative integers; the message names the file and what is wrong.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no split file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} cannot be read as a JSON split file ({err})") from None
    if isinstance(data, list):
        if len(data) != 1 or not isinstance(data[0], dict):
            raise ValueError(
                f"{path}: a chemprop split file is a list holding one object of "
                f"train/val/test rows; this one holds {len(data)} entries (one per "
                "replicate?): keep the one you want"
            )
        found, layout, names = data[0], "chemprop", {p: p for p in PARTS}
    elif isinstance(data, dict) and all(f"{p}_rows" in data for p in PARTS):
        found, layout, names = data, "mimoe", {p: f"{p}_rows" for p in PARTS}
    elif isinstance(data, dict) and "method" in data:
        raise ValueError(
            f"{path} holds positions among the kept molecules but no source rows "
            "(train_rows/val_rows/test_rows); it cannot be mapped onto another input"
        )
    elif isinstance(data, dict):
        found, layout, names = data, "chemprop", {p: p for p in PARTS}
    else:
        raise ValueError(f"{path} is not a split file: expected a JSON list or object")
    rows = {}
    for part in PARTS:
        values = found.get(names[part])
        ok = isinstance(values, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
        )
        if not ok:
            raise ValueError(f"{path}: {names[part]} must be a list of non-negative row indices")
        rows[part] = np.asarray(values, dtype=np.int64).reshape(-1)
    return rows, layout


def split_from_file(path: str | Path, kept_rows: Sequence[int], n_rows: int) -> Split:
    """The split a file names, as positions among the kept molecules.

    Args:
        path: a split file (see the module docstring).
        kept_rows: the source row of each kept molecule, in dataset order.
        n_rows: data rows in the input file (kept and skipped).

    Returns:
        A :class:`Split` with ``method="file"`` whose ``source`` records the file, its
        layout, how many of each part's rows were dropped because they were skipped, and how
        many kept molecules no part names.

    Raises:
        ValueError: the parts overlap or repeat a row, or name rows outside ``0..n_rows-1``.
    """
    rows, layout = read_split_file(path)
    every = np.concatenate([rows[p] for p in PARTS])
    beyond = every[every >= n_rows]
    if len(beyond):
        raise ValueError(
            f"{path} names rows the input does not have (it has {n_rows} data rows, 0-based): "
            f"{_examples(beyond)}"
        )
    values, counts = np.unique(every, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{path}: train, val and test must not overlap or repeat a row; repeated: "
            f"{_examples(values[counts > 1])}"
        )
    position = {int(r): i for i, r in enumerate(kept_rows)}
    parts, dropped = {}, {}
    for part in PARTS:
        kept = [position[int(r)] for r in rows[part] if int(r) in position]
        parts[part] = np.asarray(kept, dtype=np.int64)
        dropped[part] = len(rows[part]) - len(kept)
    source = {
        "file": str(path),
        "layout": layout,
        "dropped_skipped_rows": dropped,
        "unassigned_molecules": len(position) - sum(len(v) for v in parts.values()),
    }
    return Split(parts["train"], parts["val"], parts["test"], "file", None, source)


def _examples(rows: np.ndarray, most: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:most])
    return shown + (f" and {len(rows) - most} more" if len(rows) > most else "")
