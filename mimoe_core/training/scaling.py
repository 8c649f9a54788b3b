"""Standardization of regression targets: re-exported from :mod:`mimoe_core.scaling`."""

from mimoe_core.scaling import ScaledMIMoE, TargetScaler, UnscaleTransform

__all__ = ["ScaledMIMoE", "TargetScaler", "UnscaleTransform"]
