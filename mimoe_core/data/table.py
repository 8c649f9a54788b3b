"""The in-memory form of a molecular dataset before featurization, and its skip records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Task = Literal["regression", "classification"]
TASKS: tuple[str, ...] = ("regression", "classification")


@dataclass(frozen=True)
class Structure3D:
    """A molecule that comes with coordinates (SDF, QM9); it is used as given, never re-embedded.

    Attributes:
        z: Atomic numbers, shape ``[N]``.
        pos: Coordinates in Å, shape ``[N, 3]``.
        smiles: SMILES of the structure when known (used for scaffolds and display), else ``""``.
        atom_attr: ``[N, F]`` chemical atom features (:mod:`mimoe_core.atom_attributes`) when
            the source has bonds (SDF), else None (QM9's coordinates).
    """

    z: np.ndarray
    pos: np.ndarray
    smiles: str = ""
    atom_attr: np.ndarray | None = None


@dataclass(frozen=True)
class SkipRecord:
    """One input row that did not make it into the dataset, and why.

    Attributes:
        row: 0-based data row in the source (header not counted; SDF: record index).
        mol_id: The source's identifier for the row (or the row number as text).
        input: The SMILES (or a short description of a 3D record) that was given.
        reason: A sentence a person can act on.
    """

    row: int
    mol_id: str
    input: str
    reason: str


def skipped_frame(records: list[SkipRecord]) -> pd.DataFrame:
    """Skip records as a DataFrame with columns ``row, mol_id, input, reason``, sorted by row."""
    frame = pd.DataFrame(
        [(r.row, r.mol_id, r.input, r.reason) for r in records],
        columns=["row", "mol_id", "input", "reason"],
    )
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


@dataclass
class MoleculeTable:
    """Molecules with their labels, as read from a bundled dataset, a CSV, an SDF or QM9.

    Attributes:
        name: Dataset name (bundled name or file stem).
        task: ``"regression"`` or ``"classification"`` (binary, labels 0/1).
        target_names: One name per target column, length ``num_targets`` (may be 0 for
            prediction-only input).
        inputs: One entry per kept row: a SMILES string or a :class:`Structure3D`.
        targets: ``[num_molecules, num_targets]`` float64, NaN where a label is missing.
        rows: ``[num_molecules]`` 0-based source row of each entry: distinct, each in
            ``0..n_rows-1`` (results are indexed by them).
        ids: Source identifier of each entry.
        n_rows: Number of data rows in the source; ``n_rows == len(self) + len(self.skipped)``.
        skipped: Rows dropped while reading (bad labels, empty SMILES, unreadable records).
        polymer: If True, ``*`` atoms are polymer connection points to be capped.
        source: Where the table came from (path or ``bundled:NAME``).
        unit: Unit of the regression targets ("kcal/mol"), "" when unknown or unitless;
            reports and figures show it beside the metrics.
    """

    name: str
    task: Task
    target_names: list[str]
    inputs: list[str | Structure3D]
    targets: np.ndarray
    rows: np.ndarray
    ids: list[str]
    n_rows: int
    skipped: list[SkipRecord] = field(default_factory=list)
    polymer: bool = False
    source: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        n = len(self.inputs)
        if self.targets.shape != (n, len(self.target_names)):
            raise ValueError(
                f"targets has shape {self.targets.shape}, expected ({n}, {len(self.target_names)})"
            )
        if len(self.rows) != n or len(self.ids) != n:
            raise ValueError("inputs, rows and ids must have the same length")
        rows = np.asarray(self.rows)
        if n and (rows.min() < 0 or rows.max() >= self.n_rows or len(np.unique(rows)) != n):
            raise ValueError(
                f"rows must be distinct source rows in 0..n_rows-1 (n_rows={self.n_rows}), "
                f"got {rows.tolist()[:10]}"
            )

    @classmethod
    def of_kept_rows(
        cls,
        kept: Sequence[int] | np.ndarray,
        inputs: Sequence[str | Structure3D | None],
        targets: np.ndarray,
        ids: Sequence[str],
        **meta: Any,
    ) -> MoleculeTable:
        """A reader's table: the source rows ``kept`` of per-source-row columns.

        Args:
            kept: 0-based source rows that were read successfully, in source order.
            inputs: one SMILES or structure per source row (skipped rows may hold anything).
            targets: ``[n_rows, num_targets]`` labels per source row.
            ids: one identifier per source row.
            **meta: the other fields (``name``, ``task``, ``target_names``, ``n_rows``,
                ``skipped``, ``polymer``, ``source``).
        """
        kept = np.asarray(kept, dtype=np.int64)
        return cls(
            inputs=[inputs[i] for i in kept],
            targets=np.asarray(targets)[kept],
            rows=kept,
            ids=[ids[i] for i in kept],
            **meta,
        )

    def __len__(self) -> int:
        return len(self.inputs)

    def __repr__(self) -> str:
        return (
            f"MoleculeTable(name={self.name!r}, task={self.task!r}, molecules={len(self)}, "
            f"targets={self.target_names}, skipped={len(self.skipped)})"
        )

    @property
    def mask(self) -> np.ndarray:
        """``[num_molecules, num_targets]`` bool, True where a label exists."""
        return ~np.isnan(self.targets)

    @property
    def smiles(self) -> list[str]:
        """The SMILES of every entry (for 3D structures, their SMILES when known)."""
        return [self.smiles_of(i) for i in range(len(self.inputs))]

    def smiles_of(self, i: int) -> str:
        """The SMILES of entry ``i`` (for a 3D structure, its SMILES when known).

        One entry's, where :attr:`smiles` lists every entry's on each call.
        """
        item = self.inputs[i]
        return item if isinstance(item, str) else item.smiles

    def sample(self, n: int, seed: int = 0) -> MoleculeTable:
        """A seeded random subset of ``n`` molecules, kept in source order.

        For reduced runs where the first rows are not representative (files sorted by
        label or by series). Only kept molecules are drawn: the subset is a table of its own,
        with no skip records, ``n_rows == n`` and rows renumbered ``0..n-1`` (so everything
        indexed by row, such as prediction results, stays in range). ``ids`` keep the source's
        identifiers, which are the source row numbers when the source names none.
        """
        if n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return MoleculeTable(
            name=self.name,
            task=self.task,
            target_names=list(self.target_names),
            inputs=[self.inputs[i] for i in keep],
            targets=self.targets[keep],
            rows=np.arange(n),
            ids=[self.ids[i] for i in keep],
            n_rows=n,
            skipped=[],
            polymer=self.polymer,
            source=self.source,
            unit=self.unit,
        )

    def head(self, n: int) -> MoleculeTable:
        """The first ``n`` molecules (a quick subset for smoke runs).

        Skip records are kept for the source rows this subset covers, so the row accounting
        ``n_rows == len(table) + len(table.skipped)`` still holds.
        """
        if n >= len(self):
            return self
        last_row = self.rows[n - 1] if n > 0 else -1
        skipped = [s for s in self.skipped if s.row <= last_row]
        return MoleculeTable(
            name=self.name,
            task=self.task,
            target_names=list(self.target_names),
            inputs=self.inputs[:n],
            targets=self.targets[:n],
            rows=self.rows[:n],
            ids=self.ids[:n],
            n_rows=n + len(skipped),
            skipped=skipped,
            polymer=self.polymer,
            source=self.source,
            unit=self.unit,
        )


def parse_labels(
    frame: pd.DataFrame, target_cols: list[str], task: Task, ids: list[str], inputs: list[str]
) -> tuple[np.ndarray, np.ndarray, list[SkipRecord]]:
    """Turn label columns into a float array with NaN for missing labels; report bad rows.

    A row is skipped (and reported) when a label is present but not a number, when a
    classification label is not 0 or 1, or when every target of the row is missing.
    Individual missing labels of a multi-task row stay NaN: they are masked, never set to 0.

    Args:
        frame: The source table, ``num_rows`` rows, holding ``target_cols``.
        target_cols: Label columns (already checked to exist).
        task: ``"regression"`` or ``"classification"``.
        ids: Identifier per row, for the reports.
        inputs: SMILES (or description) per row, for the reports.

    Returns:
        ``(targets [num_rows, num_targets] float64, keep [num_rows] bool, skipped records)``.
    """
    n = len(frame)
    targets = np.full((n, len(target_cols)), np.nan)
    reasons: list[str | None] = [None] * n
    for j, col in enumerate(target_cols):
        raw = frame[col]
        text = raw.astype(str).str.strip()
        empty = raw.isna().to_numpy() | text.str.lower().isin(["", "nan", "na", "none"]).to_numpy()
        values = np.array(pd.to_numeric(raw.where(~empty), errors="coerce"), dtype=float)
        for i in np.flatnonzero(~empty & np.isnan(values)):
            reasons[i] = reasons[i] or f"label {text.iloc[i]!r} in column {col!r} is not a number"
        for i in np.flatnonzero(np.isinf(values)):
            reasons[i] = reasons[i] or f"label {text.iloc[i]!r} in column {col!r} is not finite"
        values[~np.isfinite(values)] = np.nan
        if task == "classification":
            bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
            for i in np.flatnonzero(bad):
                reasons[i] = reasons[i] or (
                    f"classification label {values[i]:g} in column {col!r} is not 0 or 1"
                )
        targets[:, j] = values
    if target_cols:
        for i in np.flatnonzero(np.isnan(targets).all(axis=1)):
            reasons[i] = reasons[i] or "no label: every target column is empty"
    keep = np.array([r is None for r in reasons], dtype=bool)
    skipped = [SkipRecord(i, ids[i], inputs[i], r) for i, r in enumerate(reasons) if r is not None]
    return targets, keep, skipped
