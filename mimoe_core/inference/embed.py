"""Per-molecule embeddings of a trained MI-MoE: what its linear head reads, per expert too."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from typing_extensions import Unpack

from mimoe_core.data.table import MoleculeTable
from mimoe_core.results import EmbeddingResult
from mimoe_core.trained import PredictOptions, TrainedModel

__all__ = ["embed"]


def embed(
    model: TrainedModel | str | Path,
    inputs: str | Path | Sequence[str] | MoleculeTable,
    **options: Unpack[PredictOptions],
) -> EmbeddingResult:
    """Embed molecules with a trained model (chemprop's ``fingerprint``, Uni-Mol's ``get_repr``).

    :meth:`TrainedModel.embed <mimoe_core.trained.TrainedModel.embed>` of ``model``: inputs
    are featurized exactly as :func:`~mimoe_core.inference.predict` featurizes them, and
    every input row gets one entry, in input order, ``"ok"`` with its mixture embedding
    (what the linear head reads), each selected expert's embedding, its routing and
    descriptor trajectory, or ``"skipped"`` with the reason and NaN arrays.

    Args:
        model: a :class:`~mimoe_core.trained.TrainedModel`, a checkpoint file, or a run
            folder with ``model.pt``.
        inputs: one SMILES, a list of SMILES, a ``.csv``/``.csv.gz`` (``smiles_col``) or an
            ``.sdf`` file (its 3D coordinates are used), or a :class:`MoleculeTable`.
        **options: those of :meth:`TrainedModel.predict
            <mimoe_core.trained.TrainedModel.predict>` (:class:`~mimoe_core.trained.PredictOptions`:
            ``smiles_col``, ``batch_size``, ``device``, ``progress``, ``n_jobs``,
            ``retry_timeouts``).

    Returns:
        A :class:`~mimoe_core.results.EmbeddingResult` (``save`` it as ``.npz`` or ``.csv``).
    """
    trained = model if isinstance(model, TrainedModel) else TrainedModel.load(model)
    return trained.embed(inputs, **options)
