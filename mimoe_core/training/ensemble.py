"""Train a deep ensemble: N members with different seeds on one split, into one run folder.

The folder holds every member's own run folder under ``members/member_<i>/`` (seed
``settings.seed + i``), and at its top the ensemble's: ``metrics.json`` (ensemble scores,
uncertainty metrics on val and test, and each member's scores), ``ensemble.json`` (the
members and the calibration), ``test_predictions.csv`` and ``test_explained/`` with the
std and intervals, ``splits.json``, ``skipped.csv``, and ``history.csv`` (member 0's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mimoe_core import run_folder
from mimoe_core.calibration import (
    METHODS,
    Calibration,
    check_coverage,
    finite_json,
    uncertainty_metrics,
)
from mimoe_core.data.splits import Split
from mimoe_core.ensemble import Ensemble, combine_members
from mimoe_core.featurization import FeaturizedDataset
from mimoe_core.trained import TrainedModel
from mimoe_core.training.metrics import compute_metrics
from mimoe_core.training.parts import labels_of, subset
from mimoe_core.training.records import write_run_files
from mimoe_core.training.trainer import TrainSettings, train


@dataclass
class EnsembleResult:
    """What :func:`train_ensemble` returns.

    Attributes:
        ensemble: the trained, calibrated :class:`~mimoe_core.ensemble.Ensemble`.
        metrics: the ensemble's ``metrics.json`` content.
    """

    ensemble: Ensemble
    metrics: dict


def member_dir(index: int) -> str:
    """The folder of member ``index`` inside an ensemble run folder."""
    return f"{run_folder.MEMBERS}/member_{index}"


def train_ensemble(
    dataset: FeaturizedDataset,
    split: Split,
    size: int,
    model_config: str | Path | Mapping[str, Any] | None = None,
    settings: TrainSettings | None = None,
    out_dir: str | Path | None = None,
    calibration: str = "conformal",
    coverage: float = 0.9,
    resume: bool = False,
) -> EnsembleResult:
    """Train ``size`` members (seeds ``settings.seed + i``), calibrate on val, evaluate on test.

    Args:
        dataset: the featurized molecules.
        split: train/val/test positions, the same for every member.
        size: number of members, at least 2.
        model_config: as for :func:`~mimoe_core.training.train`, the same for every member.
        settings: as for :func:`~mimoe_core.training.train`; member i uses seed
            ``settings.seed + i``.
        out_dir: the ensemble run folder; required (the members are run folders in it).
        calibration: ``"conformal"`` (default), ``"zscale"`` or ``"none"`` (see
            :mod:`mimoe_core.calibration`).
        coverage: nominal coverage of the reported test intervals, default 0.9.
        resume: members already finished are loaded, an interrupted one resumes.

    Raises:
        ValueError: ``size`` below 2, an unknown calibration, a coverage outside (0, 1), or
            calibration asked for without a validation set.
    """
    if size < 2:
        raise ValueError(f"--ensemble-size must be at least 2 for a spread, got {size}")
    if calibration not in METHODS:
        raise ValueError(f"calibration must be one of {METHODS}, got {calibration!r}")
    coverage = check_coverage(coverage)
    if calibration != "none" and len(split.val) == 0:
        raise ValueError(
            "calibration is fitted on the validation set and this split has none; "
            "use a split with a validation set, or --calibration none"
        )
    if out_dir is None:
        raise ValueError("an ensemble needs out_dir: its members are run folders inside it")
    out = Path(out_dir)
    settings = settings or TrainSettings()
    names = [member_dir(i) for i in range(size)]
    members = []
    for i, name in enumerate(names):
        folder = out / name
        if resume and (folder / run_folder.METRICS).is_file():
            members.append(TrainedModel.load(folder))  # finished before the interruption
            continue
        member_settings = replace(settings, seed=settings.seed + i, uncertainty="none")
        train(dataset, split, model_config, member_settings, folder, resume=resume)
        members.append(TrainedModel.load(folder))

    ensemble = Ensemble(members)
    val, test = subset(dataset, split.val), subset(dataset, split.test)
    batch = settings.batch_size
    val_result = combine_members(ensemble.member_results(val, batch_size=batch))
    if val:  # "none" keeps the raw std, but a fitted calibration still records it
        ensemble.calibration = Calibration.fit(
            ensemble.task,
            "ensemble",
            calibration,
            val_result.prediction,
            val_result.std,
            labels_of(val),
        )
    explained = ensemble.explain(test, batch, with_labels=True, coverage=coverage)
    metrics = _ensemble_metrics(ensemble, out, names, split, dataset, val, test, coverage)
    history = run_folder.load_run(out / names[0]).history
    write_run_files(out, dataset, split, metrics, history, explained)
    ensemble.write_manifest(out, names)
    ensemble.path = out
    return EnsembleResult(ensemble, metrics)


def _ensemble_metrics(
    ensemble: Ensemble,
    out: Path,
    names: list[str],
    split: Split,
    dataset: FeaturizedDataset,
    val: list,
    test: list,
    coverage: float,
) -> dict[str, Any]:
    """The ensemble's ``metrics.json``: member 0's facts, the ensemble's scores, each member's."""
    first = json.loads((out / names[0] / run_folder.METRICS).read_text())
    metrics = {k: v for k, v in first.items() if k not in ("val", "test", "seed", "best_epoch")}
    metrics["ensemble_size"] = len(names)
    metrics["seeds"] = [first["seed"] + i for i in range(len(names))]
    uncertainty: dict[str, Any] = {
        "estimator": "ensemble",
        "calibration": ensemble.calibration.method if ensemble.calibration else "none",
        "coverage": coverage,
    }
    for part, data_list in (("val", val), ("test", test)):
        if not data_list:
            metrics[part], uncertainty[part] = {}, {}
            continue
        combined = combine_members(ensemble.member_results(data_list, with_labels=True))
        result = combined
        if ensemble.calibration is not None:
            result = ensemble.calibration.apply_to(combined, combined.std, coverage)
        labels = labels_of(data_list)
        metrics[part] = compute_metrics(ensemble.task, result.prediction, labels)
        uncertainty[part] = finite_json(
            uncertainty_metrics(
                ensemble.task,
                result.prediction,
                result.std,
                labels,
                result.lower,
                result.upper,
                uncalibrated=combined.prediction,
            )
        )
    metrics["uncertainty"] = uncertainty
    metrics["members"] = [
        {
            "folder": name,
            **{
                k: json.loads((out / name / run_folder.METRICS).read_text())[k]
                for k in ("seed", "best_epoch", "val", "test")
            },
        }
        for name in names
    ]
    return metrics
