"""Run a trained MI-MoE on molecules and explain each prediction by its routing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mimoe_core.data.table import MoleculeTable
from mimoe_core.results import PredictionResult
from mimoe_core.trained import TrainedModel, table_from_smiles

__all__ = ["predict", "table_from_smiles"]


def predict(
    model: TrainedModel | str | Path,
    inputs: str | Path | Sequence[str] | MoleculeTable,
    smiles_col: str = "smiles",
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = False,
    n_jobs: int | None = None,
) -> PredictionResult:
    """Predict molecules with a trained model and explain each prediction by its routing.

    :meth:`TrainedModel.predict <mimoe_core.trained.TrainedModel.predict>` of ``model``:
    every input row gets one entry, in input order, ``"ok"`` with its prediction, routing and
    descriptor trajectory, or ``"skipped"`` with the reason. Inputs are featurized exactly as
    in training (conformer settings, filtration grid, descriptor settings), and a checkpoint
    from another descriptor version is an error.

    Args:
        model: a :class:`~mimoe_core.trained.TrainedModel` (``Checkpoint``), a checkpoint
            file, or a run folder with ``model.pt``.
        inputs: one SMILES, a list of SMILES, a ``.csv``/``.csv.gz`` (``smiles_col``) or an
            ``.sdf`` file (its 3D coordinates are used), or a :class:`MoleculeTable`.
        smiles_col: the CSV column of SMILES, default ``"smiles"``.
        batch_size: molecules per forward pass, default 64.
        device: ``"auto"`` (default), ``"cpu"`` or ``"cuda"``.
        progress: tqdm bars while featurizing, default False.
        n_jobs: conformer worker processes (default: all cores).

    Returns:
        A :class:`~mimoe_core.results.PredictionResult`.
    """
    trained = model if isinstance(model, TrainedModel) else TrainedModel.load(model)
    return trained.predict(inputs, smiles_col, batch_size, device, progress, n_jobs)
