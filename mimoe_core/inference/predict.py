"""Run a trained MI-MoE on molecules and explain each prediction by its routing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from typing_extensions import Unpack

from mimoe_core import run_folder
from mimoe_core.calibration import check_coverage
from mimoe_core.data.table import MoleculeTable
from mimoe_core.ensemble import Ensemble
from mimoe_core.results import PredictionResult
from mimoe_core.trained import PredictOptions, TrainedModel, table_from_smiles

__all__ = ["load_model", "predict", "table_from_smiles"]


def load_model(model: TrainedModel | Ensemble | str | Path) -> TrainedModel | Ensemble:
    """A trained model from an object, a checkpoint file, a run folder or an ensemble folder."""
    if isinstance(model, TrainedModel | Ensemble):
        return model
    if (Path(model) / run_folder.ENSEMBLE).is_file():
        return Ensemble.load(model)
    return TrainedModel.load(model)


def predict(
    model: TrainedModel | Ensemble | str | Path,
    inputs: str | Path | Sequence[str] | MoleculeTable,
    interval: float | None = None,
    **options: Unpack[PredictOptions],
) -> PredictionResult:
    """Predict molecules with a trained model and explain each prediction by its routing.

    :meth:`TrainedModel.predict <mimoe_core.trained.TrainedModel.predict>` of ``model``:
    every input row gets one entry, in input order, ``"ok"`` with its prediction, routing and
    descriptor trajectory, or ``"skipped"`` with the reason. Inputs are featurized exactly as
    in training (conformer settings, filtration grid, descriptor settings), and a checkpoint
    from another descriptor version is an error. A model with an uncertainty (an ensemble,
    or a run trained with ``uncertainty="experts"``) also fills ``std`` and, for
    regression, the interval ``lower``/``upper``.

    Args:
        model: a :class:`~mimoe_core.trained.TrainedModel` (``Checkpoint``), an
            :class:`~mimoe_core.ensemble.Ensemble`, a checkpoint file, a run folder with
            ``model.pt``, or an ensemble run folder.
        inputs: one SMILES, a list of SMILES, a ``.csv``/``.csv.gz`` (``smiles_col``) or an
            ``.sdf`` file (its 3D coordinates are used), or a :class:`MoleculeTable`.
        interval: the coverage of the intervals, in (0, 1); default None: 0.9 when the model
            has an uncertainty, none otherwise.
        **options: those of :meth:`TrainedModel.predict
            <mimoe_core.trained.TrainedModel.predict>` (:class:`~mimoe_core.trained.PredictOptions`:
            ``smiles_col``, ``batch_size``, ``device``, ``progress``, ``n_jobs``,
            ``retry_timeouts``).

    Returns:
        A :class:`~mimoe_core.results.PredictionResult`.

    Raises:
        ValueError: ``interval`` outside (0, 1), or asked of a model without uncertainty.
    """
    trained = load_model(model)
    coverage = 0.9 if interval is None else check_coverage(interval)
    if isinstance(trained, Ensemble):
        return trained.predict(inputs, coverage=coverage, **options)
    if interval is not None and trained.calibration is None:
        raise ValueError(
            "this model has no uncertainty to give intervals: train an ensemble "
            "(--ensemble-size N) or with --uncertainty experts"
        )
    return trained.predict(inputs, coverage=coverage, **options)
