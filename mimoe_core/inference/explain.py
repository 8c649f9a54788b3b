"""Turn a trained model's outputs on featurized molecules into a :class:`PredictionResult`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch_geometric.data import Data

from mimoe_core.results import PredictionResult
from mimoe_core.trained import TrainedModel


def explain_data(
    model: TrainedModel | str | Path, data_list: Sequence[Data], **kwargs
) -> PredictionResult:
    """:meth:`TrainedModel.explain` of a trained model, a checkpoint file or a run folder.

    ``kwargs`` are :meth:`~mimoe_core.trained.TrainedModel.explain`'s: ``batch_size``,
    ``device``, ``num_rows``, ``skipped``, ``with_labels``.
    """
    trained = model if isinstance(model, TrainedModel) else TrainedModel.load(model)
    return trained.explain(data_list, **kwargs)
