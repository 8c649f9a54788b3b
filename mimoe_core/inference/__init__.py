"""Prediction with routing explanations: plain result objects for reports and figures."""

from mimoe_core.inference._run import resolve_device, run_model
from mimoe_core.inference.explain import explain_data
from mimoe_core.inference.predict import predict, table_from_smiles

__all__ = ["explain_data", "predict", "resolve_device", "run_model", "table_from_smiles"]
