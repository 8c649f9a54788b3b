"""Batched forward passes of a trained model, shared by training evaluation and prediction.

Imports no training code, so the trainer and :mod:`.predict` can both use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from mimoe_core import keys
from mimoe_core.models import MIMoE


class Scaler(Protocol):
    """Maps standardized model outputs back to the original units."""

    def inverse(self, y: Tensor) -> Tensor: ...  # noqa: D102


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


@torch.no_grad()
def run_model(
    model: MIMoE,
    data_list: Sequence[Data],
    scaler: Scaler,
    task: str,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Predictions and routing of ``model`` (eval mode) for featurized molecules.

    Returns:
        ``prediction`` [M, num_targets] (original units; probabilities for classification),
        ``alpha`` [M, K], ``expert_predictions`` [M, K, num_targets] (original units for
        regression, logits for classification; NaN where an expert did not run).
    """
    model.eval()
    device = torch.device(device)
    dtype = next(model.parameters()).dtype
    preds, alphas, experts = [], [], []
    for start in range(0, len(data_list), batch_size):
        batch = Batch.from_data_list(list(data_list[start : start + batch_size])).to(device)
        batch[keys.POS] = batch[keys.POS].to(dtype)
        out = model.forward_batch(batch)
        y, per_expert = out.y.float(), out.expert_outputs.float()
        if task == "regression":
            y, per_expert = scaler.inverse(y), scaler.inverse(per_expert)
        else:
            y = torch.sigmoid(y)
        per_expert = per_expert.masked_fill(~out.selected.unsqueeze(-1), float("nan"))
        preds.append(y.cpu())
        alphas.append(out.alpha.float().cpu())
        experts.append(per_expert.cpu())
    num_t, num_k = model.out_channels, model.num_experts
    if not preds:
        return {
            "prediction": np.zeros((0, num_t)),
            "alpha": np.zeros((0, num_k)),
            "expert_predictions": np.zeros((0, num_k, num_t)),
        }
    return {
        "prediction": torch.cat(preds).double().numpy(),
        "alpha": torch.cat(alphas).double().numpy(),
        "expert_predictions": torch.cat(experts).double().numpy(),
    }
