"""A deep ensemble of trained MI-MoE models: one prediction, its spread, and its routing.

An ensemble run folder (written by :func:`mimoe_core.training.train_ensemble`) holds its
members as run folders under ``members/`` and an ``ensemble.json`` naming them with the
calibration fitted on the validation set. :class:`Ensemble` loads it and predicts like a
:class:`~mimoe_core.trained.TrainedModel`, featurizing each input once for all members.

How the members combine, per molecule:

- prediction: the mean of the members' predictions (probabilities for classification);
  uncertainty: their sample standard deviation (ddof=1), or for members with a variance head
  (``--uncertainty mve``) the std of their Gaussian mixture, calibrated (see
  :mod:`mimoe_core.calibration`);
- routing: alpha is the members' mean alpha (it still sums to 1), and each expert's
  prediction is the alpha-weighted mean of that expert's predictions over the members
  that selected it, so that alpha_k (y_k - baseline) is the mean of the members'
  contributions of expert k: for regression the contributions add up exactly to the
  ensemble's prediction; for classification they add up to the mean of the members'
  logits. Each member's own routing stays available from :meth:`Ensemble.member_results`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import Unpack

from mimoe_core import run_folder
from mimoe_core.analysis.uncertainty import ensemble_mean_std
from mimoe_core.calibration import Calibration, check_coverage
from mimoe_core.data.table import MoleculeTable, SkipRecord
from mimoe_core.results import PredictionResult
from mimoe_core.trained import PredictOptions, TrainedModel

ENSEMBLE_VERSION = 1


@dataclass
class Ensemble:
    """Members trained on the same split with different seeds, and their calibration.

    Attributes:
        members: the trained members (same task, targets, experts and featurization).
        calibration: fitted on the validation set, or None (uncalibrated std, no interval).
        path: the ensemble run folder it was loaded from, if any.
    """

    members: list[TrainedModel]
    calibration: Calibration | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(
                f"an ensemble needs at least 2 members, got {len(self.members)} "
                "(--ensemble-size 1 is a single model)"
            )
        first = self.members[0]
        for n, other in enumerate(self.members[1:], start=1):
            for what in ("task", "targets", "radii", "conformer_settings", "featurization"):
                if getattr(other, what) != getattr(first, what):
                    raise ValueError(f"ensemble member {n} differs from member 0 in its {what}")
            if _cutoff_setting(other.model) != _cutoff_setting(first.model):
                raise ValueError(f"ensemble member {n} has other expert cutoffs than member 0")

    @property
    def task(self) -> str:
        """``"regression"`` or ``"classification"``."""
        return self.members[0].task

    @property
    def targets(self) -> list[str]:
        """The target names."""
        return list(self.members[0].targets)

    @classmethod
    def load(cls, folder: str | Path) -> Ensemble:
        """Load an ensemble run folder (``ensemble.json`` and its members).

        Raises:
            FileNotFoundError: no ``ensemble.json`` there, or a member is missing.
            ValueError: an unreadable manifest or members that do not fit together.
        """
        folder = Path(folder)
        manifest = folder / run_folder.ENSEMBLE
        if not manifest.is_file():
            raise FileNotFoundError(f"{folder} is not an ensemble run: it has no {manifest.name}")
        try:
            data = json.loads(manifest.read_text())
            names = [str(m) for m in data["members"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{manifest} is not an ensemble manifest: {err}") from None
        members = [TrainedModel.load(folder / name) for name in names]
        calibration = data.get("calibration")
        return cls(members, Calibration.from_dict(calibration) if calibration else None, folder)

    def write_manifest(self, folder: str | Path, member_dirs: Sequence[str]) -> None:
        """Write ``ensemble.json``: the members' folders (relative) and the calibration."""
        manifest = {
            "version": ENSEMBLE_VERSION,
            "members": list(member_dirs),
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }
        (Path(folder) / run_folder.ENSEMBLE).write_text(json.dumps(manifest, indent=1))

    def predict(
        self,
        inputs: str | Path | Sequence[str] | MoleculeTable,
        coverage: float = 0.9,
        **options: Unpack[PredictOptions],
    ) -> PredictionResult:
        """Featurize once, predict with every member, combine (see the module docstring).

        Args:
            inputs: as for :meth:`TrainedModel.predict <mimoe_core.trained.TrainedModel.predict>`.
            coverage: nominal coverage of the intervals, in (0, 1), default 0.9.
            **options: :class:`~mimoe_core.trained.PredictOptions` (``smiles_col``,
                ``batch_size``, ``device``, ``progress``, ``n_jobs``, ``retry_timeouts``).

        Returns:
            A :class:`PredictionResult` with ``std`` (and ``lower``/``upper`` for regression
            when the ensemble is calibrated).
        """
        coverage = check_coverage(coverage)
        data_list, placed = self.members[0].prepare(inputs, **options)
        return self.explain(data_list, **placed, coverage=coverage)

    def member_results(self, data_list: Sequence[Any], **options: Any) -> list[PredictionResult]:
        """Each member's own :meth:`TrainedModel.explain` of the same molecules.

        ``options`` are :meth:`TrainedModel.explain`'s (``batch_size``, ``device``,
        ``num_rows``, ``skipped``, ``with_labels``), passed to every member.
        """
        return [member.explain(data_list, **options) for member in self.members]

    def explain(
        self,
        data_list: Sequence[Any],
        batch_size: int = 64,
        device: str | None = None,
        num_rows: int | None = None,
        skipped: Sequence[SkipRecord] = (),
        with_labels: bool = False,
        coverage: float = 0.9,
    ) -> PredictionResult:
        """The ensemble's result for featurized molecules.

        Arguments as for :meth:`TrainedModel.explain`, plus the interval ``coverage``.
        """
        results = self.member_results(
            data_list,
            batch_size=batch_size,
            device=device,
            num_rows=num_rows,
            skipped=skipped,
            with_labels=with_labels,
        )
        combined = combine_members(results)
        if self.calibration is None:
            return combined
        return self.calibration.apply_to(combined, combined.std, coverage)


def combine_members(results: Sequence[PredictionResult]) -> PredictionResult:
    """One result from the members' results on the same rows (see the module docstring).

    The std is the members' sample std (ddof=1), uncalibrated; for members with a
    mean-variance head it is the std of their Gaussian mixture, sqrt(mean of the variances +
    population variance of the means). ``uncertainty`` is ``"ensemble"``.
    """
    first = results[0]
    preds = np.stack([r.prediction for r in results])
    mean, std = ensemble_mean_std(preds)
    if all(r.uncertainty == "mve" and r.std is not None for r in results):
        # Members with a variance head: the std of their Gaussian mixture, aleatoric (mean of
        # the members' variances) plus epistemic (the spread of their means).
        noise = np.mean(np.stack([r.std for r in results]) ** 2, axis=0)
        std = np.sqrt(noise + preds.var(axis=0))
    alphas = np.stack([r.alpha for r in results])  # [N, M, K]
    alpha = alphas.mean(axis=0)
    base = np.asarray(first.baseline, dtype=np.float64)
    # alpha-weighted mean of each expert's deviation from the baseline over the members that
    # selected it; experts no member selected stay NaN, as unselected experts do.
    deviation = np.nan_to_num(np.stack([r.expert_predictions for r in results]) - base)
    weighted = (alphas[..., None] * deviation).mean(axis=0)  # [M, K, T]
    with np.errstate(invalid="ignore", divide="ignore"):
        experts = np.where(alpha[..., None] > 0, base + weighted / alpha[..., None], np.nan)
    return replace(
        first,
        # members with learnable cutoffs each learned their own; the mean labels the experts
        cutoffs=np.mean([r.cutoffs for r in results], axis=0).tolist(),
        prediction=mean,
        alpha=alpha,
        expert_predictions=experts,
        std=std,
        uncertainty="ensemble",
    )


def _cutoff_setting(model) -> tuple:
    """What members must share about the cutoffs: the fixed values, or the learnable setting.

    Members with learnable cutoffs start from the same setting and each learns its own.
    """
    if model.learnable_cutoffs is None:
        return ("fixed", tuple(model.cutoffs))
    spec = model.config["learnable_cutoffs"]
    return ("learnable", tuple(model.config["cutoffs"]), tuple(sorted(spec.items())))
