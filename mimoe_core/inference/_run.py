"""Batched forward passes: re-exported from :mod:`mimoe_core.trained`, shared with training."""

from mimoe_core.trained import prepare_batch, resolve_device, run_model

__all__ = ["prepare_batch", "resolve_device", "run_model"]
