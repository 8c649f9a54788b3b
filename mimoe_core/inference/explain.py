"""Turn a model's outputs on featurized molecules into a :class:`PredictionResult`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from mimoe_core import keys
from mimoe_core.data.table import SkipRecord
from mimoe_core.inference._run import Scaler, run_model
from mimoe_core.models import MIMoE
from mimoe_core.results import PredictionResult
from mimoe_core.topology import DESCRIPTOR_NAMES


def explain_data(
    model: MIMoE,
    data_list: Sequence[Data],
    scaler: Scaler,
    task: str,
    targets: Sequence[str],
    radii: Sequence[float],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    num_rows: int | None = None,
    skipped: Sequence[SkipRecord] = (),
    with_labels: bool = False,
) -> PredictionResult:
    """Predictions, routing and structures of featurized molecules as a plain result.

    Args:
        model: a trained :class:`MIMoE` (put in eval mode).
        data_list: featurized molecules.
        scaler: the training run's target scaling (``mean`` is the regression baseline).
        task: ``"regression"`` or ``"classification"``.
        targets: target names, one per model output.
        radii: the filtration grid [T] in Å the descriptors were computed on.
        batch_size: molecules per forward pass.
        device: where the forward passes run.
        num_rows: if given, entry r is the source row r (``data.row``) and rows without a
            molecule are ``skipped`` with the reason from ``skipped``; if None, one entry
            per molecule in ``data_list`` order.
        skipped: skip records of the rows that did not become molecules.
        with_labels: keep the molecules' labels (``data.y``) in ``labels``.

    Returns:
        A :class:`PredictionResult` with structures (atomic numbers and coordinates).
    """
    out = run_model(model, data_list, scaler, task, batch_size, device)
    if num_rows is None:
        slots = list(range(len(data_list)))
        num = len(data_list)
    else:
        slots = [int(d[keys.ROW]) for d in data_list]
        num = num_rows
    num_k, num_t = model.num_experts, len(targets)
    prediction = np.full((num, num_t), np.nan)
    alpha = np.full((num, num_k), np.nan)
    experts = np.full((num, num_k, num_t), np.nan)
    labels = np.full((num, num_t), np.nan)
    topo = np.full((num, len(radii), len(DESCRIPTOR_NAMES)), np.nan)
    ids, smiles = [""] * num, [""] * num
    rows = list(range(num)) if num_rows is not None else [int(d[keys.ROW]) for d in data_list]
    status, reason = ["skipped"] * num, [""] * num
    atomic_numbers = [np.zeros(0, dtype=np.int64) for _ in range(num)]
    positions = [np.zeros((0, 3)) for _ in range(num)]
    for n, (slot, data) in enumerate(zip(slots, data_list, strict=True)):
        prediction[slot] = out["prediction"][n]
        alpha[slot] = out["alpha"][n]
        experts[slot] = out["expert_predictions"][n]
        labels[slot] = data[keys.Y][0].double().numpy()[:num_t] if with_labels else np.nan
        topo[slot] = data[keys.TOPO][0].numpy()
        ids[slot], smiles[slot], status[slot] = str(data[keys.MOL_ID]), data[keys.SMILES], "ok"
        atomic_numbers[slot] = data[keys.Z].numpy().astype(np.int64)
        positions[slot] = data[keys.POS].double().numpy()
    for skip in skipped:
        if num_rows is not None:
            ids[skip.row], smiles[skip.row] = skip.mol_id, skip.input
            reason[skip.row] = skip.reason
    baseline = list(scaler.mean) if task == "regression" else [0.0] * num_t
    return PredictionResult(
        task=task,
        targets=list(targets),
        ids=ids,
        smiles=smiles,
        rows=rows,
        status=status,
        reason=reason,
        prediction=prediction,
        alpha=alpha,
        expert_predictions=experts,
        topo=topo,
        radii=[float(r) for r in radii],
        cutoffs=[float(c) for c in model.cutoffs],
        descriptor_names=list(DESCRIPTOR_NAMES),
        baseline=[float(b) for b in baseline],
        labels=labels if with_labels else None,
        atomic_numbers=atomic_numbers,
        positions=positions,
    )
