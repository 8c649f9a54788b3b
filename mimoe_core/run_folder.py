"""The run folder of one training run: the names of its files, their writer and their reader.

:func:`mimoe_core.training.train` with ``out_dir`` fills one folder; this module is the only
place that knows its layout:

- ``model.pt``, ``last.pt``: checkpoints (best epoch; for resuming), written by
  :func:`mimoe_core.training.save_checkpoint` under these names;
- ``metrics.json``: task, targets, split sizes, best epoch, ``model`` (with the experts'
  ``cutoffs``: K is their number) and ``settings``, ``val`` and ``test`` scores;
- ``history.csv``: one row per epoch (losses, ``usage_1..K``, the validation metric);
- ``splits.json``: the split (positions and source rows);
- ``skipped.csv``: molecules dropped during featurization;
- ``test_predictions.csv``: the test set as :meth:`PredictionResult.to_frame` with labels;
- ``test_explained/``: the test set's :class:`~mimoe_core.results.PredictionResult`;
- ``report.html`` and ``figures/``: written later by ``mimoe report``;
- ensembles only (:func:`mimoe_core.training.train_ensemble`): ``ensemble.json`` (the
  members and the calibration, read by :class:`mimoe_core.ensemble.Ensemble`) and
  ``members/member_<i>/``, one run folder per member; ``history.csv`` is member 0's.

:func:`write_run` writes the plain files and :func:`load_run` reads them back into a
:class:`RunFolder`. Only json, numpy and pandas are imported (never torch), so figures and
reports read runs without model code.

Example:
    >>> import tempfile
    >>> import pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> metrics = {"task": "regression", "targets": ["y"], "model": {"cutoffs": [2.0, 3.0]}}
    >>> history = pd.DataFrame({"loss": [1.0], "usage_1": [0.5], "usage_2": [0.5]})
    >>> write_run(folder, metrics=metrics, history=history)
    >>> listing(folder)
    ['history.csv', 'metrics.json']
    >>> run = load_run(folder)
    >>> run.num_experts, run.cutoffs
    (2, [2.0, 3.0])
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mimoe_core.results import PredictionResult

if TYPE_CHECKING:
    from mimoe_core.data import Split

__all__ = [
    "ENSEMBLE",
    "FIGURES",
    "HISTORY",
    "LAST",
    "MEMBERS",
    "METRICS",
    "MODEL",
    "REPORT",
    "SKIPPED",
    "SPLITS",
    "TEST_EXPLAINED",
    "TEST_PREDICTIONS",
    "TRAIN_OUTPUTS",
    "RunFolder",
    "listing",
    "load_run",
    "usage_columns",
    "write_run",
]

MODEL = "model.pt"
LAST = "last.pt"
METRICS = "metrics.json"
HISTORY = "history.csv"
SPLITS = "splits.json"
SKIPPED = "skipped.csv"
TEST_PREDICTIONS = "test_predictions.csv"
TEST_EXPLAINED = "test_explained"
REPORT = "report.html"
FIGURES = "figures"
ENSEMBLE = "ensemble.json"
MEMBERS = "members"

# What ``train(..., out_dir=...)`` leaves in the folder.
TRAIN_OUTPUTS = (MODEL, LAST, METRICS, HISTORY, SPLITS, SKIPPED, TEST_PREDICTIONS, TEST_EXPLAINED)

SKIPPED_COLUMNS = ["row", "mol_id", "input", "reason"]


def listing(folder: str | Path) -> list[str]:
    """The names in ``folder``, sorted, folders with a trailing ``/``."""
    return sorted(p.name + ("/" if p.is_dir() else "") for p in Path(folder).iterdir())


def usage_columns(history: pd.DataFrame) -> list[str]:
    """The ``usage_1..K`` columns of a history frame, in expert order.

    Example:
        >>> usage_columns(pd.DataFrame(columns=["loss", "usage_10", "usage_2", "usage_1"]))
        ['usage_1', 'usage_2', 'usage_10']
    """
    return _numbered_columns(history, "usage")


def cutoff_columns(history: pd.DataFrame) -> list[str]:
    """The ``cutoff_1..K`` columns (learned cutoffs in Å per epoch), in expert order.

    Only runs with learnable cutoffs have them; the list is empty otherwise.
    """
    return _numbered_columns(history, "cutoff")


def _numbered_columns(history: pd.DataFrame, prefix: str) -> list[str]:
    found = [c for c in history.columns if re.fullmatch(rf"{prefix}_\d+", str(c))]
    return sorted(found, key=lambda c: int(c.split("_")[1]))


# --------------------------------------------------------------------------- writing


def write_run(
    run_dir: str | Path,
    *,
    metrics: dict,
    history: pd.DataFrame,
    split: Split | None = None,
    split_rows: Sequence[int] | None = None,
    skipped: pd.DataFrame | None = None,
    test: PredictionResult | None = None,
) -> None:
    """Write the plain files of a run folder (the checkpoints are written elsewhere).

    Args:
        run_dir: the folder (created if needed).
        metrics: the ``metrics.json`` content; ``metrics["model"]["cutoffs"]`` names the
            experts (K is its length).
        history: one row per epoch, to ``history.csv``.
        split: the :class:`~mimoe_core.data.Split`, to ``splits.json`` by its own
            :meth:`~mimoe_core.data.Split.save`.
        split_rows: each split position's source row, saved with the split.
        skipped: the skipped molecules (columns ``row, mol_id, input, reason``), to
            ``skipped.csv``.
        test: the test set's result with labels: saved to ``test_explained/`` and, as
            :meth:`PredictionResult.to_frame` with labels, to ``test_predictions.csv``.
    """
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    history.to_csv(out / HISTORY, index=False)
    (out / METRICS).write_text(json.dumps(metrics, indent=1))
    if split is not None:
        split.save(out / SPLITS, rows=split_rows)
    if skipped is not None:
        skipped.to_csv(out / SKIPPED, index=False)
    if test is not None:
        test.save(out / TEST_EXPLAINED)
        test.to_frame(with_labels=True).to_csv(out / TEST_PREDICTIONS, index=False)


# --------------------------------------------------------------------------- reading


@dataclass
class RunFolder:
    """The readable content of one training run folder.

    Attributes:
        path: the folder.
        metrics: the ``metrics.json`` content (task, targets, split sizes, best epoch,
            ``model`` and ``settings`` dicts, ``val`` and ``test`` metric dicts).
        history: one row per epoch (``history.csv``): ``loss``, ``task_loss``, ``aux_loss``,
            ``usage_1..K``, ``epoch``, ``val_rmse`` or ``val_roc_auc``, ``lr``, ``seconds``;
            empty when the file is missing.
        test: the test set's predictions and routing with labels (``test_explained/``), or
            None when the folder has none.
        skipped: molecules dropped during featurization (``skipped.csv``: ``row``,
            ``mol_id``, ``input``, ``reason``), possibly empty.
        task: ``"regression"`` or ``"classification"``.
        targets: target names.
        cutoffs: the K expert cutoffs in Å (``metrics["model"]["cutoffs"]``).
        num_experts: K.
    """

    path: Path
    metrics: dict
    history: pd.DataFrame
    test: PredictionResult | None
    skipped: pd.DataFrame
    task: str
    targets: list[str]
    cutoffs: list[float]
    num_experts: int

    def __repr__(self) -> str:
        test = "None" if self.test is None else f"{len(self.test)} entries"
        return (
            f"RunFolder(path={str(self.path)!r}, task={self.task!r}, targets={self.targets}, "
            f"K={self.num_experts}, cutoffs={self.cutoffs}, epochs={len(self.history)}, "
            f"test={test}, skipped={len(self.skipped)})"
        )


def load_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder written by ``train(..., out_dir=run_dir)``.

    ``metrics.json`` is required; ``history.csv``, ``skipped.csv`` and ``test_explained/``
    are read when present. The cutoffs, and K, come from ``metrics["model"]["cutoffs"]``
    (the experts the model has); the history's ``usage_*`` columns and the cutoffs of
    ``test_explained/`` must agree with them.

    Args:
        run_dir: the run folder.

    Returns:
        :class:`RunFolder`.

    Raises:
        FileNotFoundError: if ``run_dir`` is not a folder or holds no ``metrics.json`` (the
            message lists what it holds).
        ValueError: if ``metrics.json`` is not valid JSON, lacks ``task``/``targets`` or
            ``model.cutoffs``, or the files disagree on the experts.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder at {path}")
    metrics_file = path / METRICS
    if not metrics_file.is_file():
        raise FileNotFoundError(
            f"{path} is not a run folder: it has no {METRICS} (it holds: "
            f"{', '.join(listing(path)) or 'nothing'})"
        )
    try:
        metrics = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_file} is not valid JSON: {err}") from None
    missing = [k for k in ("task", "targets") if k not in metrics]
    if missing:
        raise ValueError(f"{metrics_file} lacks {missing}; it has keys {sorted(metrics)}")

    history = _read_csv(path / HISTORY, columns=[])
    skipped = _read_csv(path / SKIPPED, columns=SKIPPED_COLUMNS)
    test = None
    if (path / TEST_EXPLAINED / "result.json").is_file():
        test = PredictionResult.load(path / TEST_EXPLAINED)
    cutoffs = _cutoffs(path, metrics, history, test)
    return RunFolder(
        path=path,
        metrics=metrics,
        history=history,
        test=test,
        skipped=skipped,
        task=str(metrics["task"]),
        targets=[str(t) for t in metrics["targets"]],
        cutoffs=cutoffs,
        num_experts=len(cutoffs),
    )


def _cutoffs(
    path: Path, metrics: dict, history: pd.DataFrame, test: PredictionResult | None
) -> list[float]:
    """The experts' cutoffs from ``metrics.json``, checked against the other files."""
    model = metrics.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("cutoffs"), list):
        what = "the experts' cutoffs, written by mimoe train"
        raise ValueError(f"{path / METRICS} lacks model.cutoffs ({what})")
    cutoffs = [float(c) for c in model["cutoffs"]]
    where = f"{path}: {METRICS} records {len(cutoffs)} expert cutoffs {cutoffs}"
    usage = usage_columns(history)
    if usage and len(usage) != len(cutoffs):
        raise ValueError(f"{where}, but {HISTORY} has {len(usage)} usage columns")
    if test is not None:
        theirs = [float(c) for c in test.cutoffs]
        same = len(theirs) == len(cutoffs) and np.allclose(theirs, cutoffs)
        if not same or test.num_experts != len(cutoffs):
            raise ValueError(
                f"{where}, but {TEST_EXPLAINED}/ has cutoffs {theirs} and "
                f"{test.num_experts} routing weights per molecule"
            )
    return cutoffs


def _read_csv(file: Path, columns: list[str]) -> pd.DataFrame:
    if not file.is_file():
        return pd.DataFrame(columns=columns)
    try:
        return pd.read_csv(file)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)
