"""Batched forward passes: re-exported from :mod:`mimoe_core.forward`, shared with training."""

from mimoe_core.forward import prepare_batch, resolve_device, run_model

__all__ = ["prepare_batch", "resolve_device", "run_model"]
