"""Read one training run folder: :class:`RunFolder` and :func:`load_run`.

A run folder is what :func:`mimoe_core.training.train` writes with ``out_dir``:
``metrics.json``, ``history.csv``, ``skipped.csv`` and ``test_explained/`` (plus checkpoints,
which are never opened here). Everything is read with ``json``, pandas and
:meth:`PredictionResult.load`, so no model code is imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mimoe_core.results import PredictionResult
from mimoe_viz._runs import usage_columns

__all__ = ["RunFolder", "load_run"]

_SKIPPED_COLUMNS = ["row", "mol_id", "input", "reason"]


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
        cutoffs: the K expert cutoffs in Å.
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


def _folder_listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names) if names else "nothing"


def load_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder written by ``train(..., out_dir=run_dir)``.

    ``metrics.json`` is required; ``history.csv``, ``skipped.csv`` and ``test_explained/``
    are read when present.

    The cutoffs and K come from ``test_explained/`` when it exists (the experts the model
    really has), else from ``metrics["model"]["cutoffs"]``; K is the number of ``usage_*``
    columns of the history when there is one. (For ``single`` and ``one`` routing
    ``metrics.json`` records the config's cutoff list, while the model has one expert.)

    Args:
        run_dir: the run folder.

    Returns:
        :class:`RunFolder`.

    Raises:
        FileNotFoundError: if ``run_dir`` is not a folder or holds no ``metrics.json`` (the
            message lists what it holds).
        ValueError: if ``metrics.json`` is not valid JSON or lacks ``task``/``targets``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder at {path}")
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(
            f"{path} is not a run folder: it has no metrics.json (it holds: "
            f"{_folder_listing(path)})"
        )
    try:
        metrics = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_file} is not valid JSON: {err}") from None
    missing = [k for k in ("task", "targets") if k not in metrics]
    if missing:
        raise ValueError(f"{metrics_file} lacks {missing}; it has keys {sorted(metrics)}")

    history = _read_csv(path / "history.csv", columns=[])
    skipped = _read_csv(path / "skipped.csv", columns=_SKIPPED_COLUMNS)
    test = None
    if (path / "test_explained" / "result.json").is_file():
        test = PredictionResult.load(path / "test_explained")

    cutoffs = [float(c) for c in metrics.get("model", {}).get("cutoffs", [])]
    num_experts = len(cutoffs)
    if test is not None:
        cutoffs, num_experts = [float(c) for c in test.cutoffs], test.num_experts
    elif usage_columns(history):
        num_experts = len(usage_columns(history))
    return RunFolder(
        path=path,
        metrics=metrics,
        history=history,
        test=test,
        skipped=skipped,
        task=str(metrics["task"]),
        targets=[str(t) for t in metrics["targets"]],
        cutoffs=cutoffs,
        num_experts=num_experts,
    )


def _read_csv(file: Path, columns: list[str]) -> pd.DataFrame:
    if not file.is_file():
        return pd.DataFrame(columns=columns)
    try:
        return pd.read_csv(file)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)
