"""Prediction with routing explanations: plain result objects for reports and figures.

The trained model itself, :class:`~mimoe_core.trained.TrainedModel`, lives in
:mod:`mimoe_core.trained` (shared with training); it is re-exported here.
"""

from mimoe_core.inference._run import prepare_batch, resolve_device, run_model
from mimoe_core.inference.embed import embed
from mimoe_core.inference.explain import explain_data
from mimoe_core.inference.predict import predict, table_from_smiles
from mimoe_core.trained import TrainedModel, load_checkpoint

__all__ = [
    "TrainedModel",
    "embed",
    "explain_data",
    "load_checkpoint",
    "predict",
    "prepare_batch",
    "resolve_device",
    "run_model",
    "table_from_smiles",
]
