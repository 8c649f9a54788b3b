"""Standardization of regression targets, fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class TargetScaler:
    """Per-target ``(y - mean) / std``; identity for classification.

    Attributes:
        mean: [num_targets] means of the present training labels.
        std: [num_targets] standard deviations (1 where a target is constant or has < 2
            labels, so a constant target does not divide by zero).
    """

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, targets: np.ndarray, task: str) -> TargetScaler:
        """Fit on training labels [num_molecules, num_targets] with NaN for missing ones.

        Example:
            >>> s = TargetScaler.fit(np.array([[1.0, np.nan], [3.0, 5.0]]), "regression")
            >>> s.mean, s.std
            ([2.0, 5.0], [1.0, 1.0])
        """
        num = targets.shape[1]
        if task == "classification":
            return cls([0.0] * num, [1.0] * num)
        mean, std = [], []
        for col in targets.T:
            present = col[~np.isnan(col)]
            if present.size == 0:
                raise ValueError("a target has no label in the training split")
            mean.append(float(present.mean()))
            spread = float(present.std()) if present.size > 1 else 0.0
            std.append(spread if spread > 0 else 1.0)
        return cls(mean, std)

    def transform(self, y: Tensor) -> Tensor:
        """Original units -> standardized, [B, num_targets]."""
        return (y - self._t(self.mean, y)) / self._t(self.std, y)

    def inverse(self, y: Tensor) -> Tensor:
        """Standardized -> original units, [B, num_targets] (or [B, K, num_targets])."""
        return y * self._t(self.std, y) + self._t(self.mean, y)

    @staticmethod
    def _t(values: list[float], like: Tensor) -> Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def to_dict(self) -> dict:
        """Plain dict for checkpoints."""
        return {"mean": list(self.mean), "std": list(self.std)}
