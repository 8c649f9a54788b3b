"""The batched forward pass shared by training and inference: devices, batches, outputs.

:func:`run_model` and :func:`run_embeddings` run a model over featurized molecules in
batches (eval mode, no gradients) and hand back numpy arrays; :func:`prepare_batch` makes
the PyG batch both use, and the trainer too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from mimoe_core import keys
from mimoe_core.conformer_views import conformer_view, conformers_per_molecule
from mimoe_core.models import MIMoE
from mimoe_core.packed_molecules import PackedMolecules
from mimoe_core.scaling import ScaledMIMoE

__all__ = [
    "AssembledOneByOne",
    "assemble_batch",
    "batch_source",
    "prepare_batch",
    "resolve_device",
    "run_embeddings",
    "run_model",
]

#: Molecules packed at a time by :func:`run_model` (about 1.7 KB each for Tox21's).
PACKED_CHUNK = 4096


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def prepare_batch(
    data_list: Sequence[Data], device: torch.device | str, dtype: torch.dtype
) -> Batch:
    """Molecules -> one PyG ``Batch`` on ``device``, coordinates in the model's ``dtype``.

    The one place batches are made, for training steps and for evaluation alike.
    """
    return assemble_batch(data_list, dtype).to(device)


def assemble_batch(data_list: Sequence[Data], dtype: torch.dtype) -> Batch:
    """Molecules -> one PyG ``Batch`` in host memory, coordinates in ``dtype``.

    :func:`prepare_batch` without the move to the device: the part that loader worker
    processes do ahead of the training steps (:mod:`mimoe_core.training.batches`).
    """
    batch = Batch.from_data_list(list(data_list))
    batch[keys.POS] = batch[keys.POS].to(dtype)
    return batch


class AssembledOneByOne:
    """Molecules whose batches are assembled one molecule at a time.

    ``Batch.from_data_list`` of their conformer views, behind the ``batch`` method of the
    molecules that gather their own (:class:`~mimoe_core.packed_molecules.PackedMolecules`).
    """

    def __init__(self, molecules: Sequence[Data]) -> None:
        self.molecules = molecules

    def __len__(self) -> int:
        return len(self.molecules)

    def batch(self, positions: Sequence[int], conformers: Any, dtype: torch.dtype) -> Batch:
        """The molecules at ``positions``, each showing its conformer (0 when None)."""
        shown = [0] * len(positions) if conformers is None else conformers
        chosen = [
            conformer_view(self.molecules[i], c) for i, c in zip(positions, shown, strict=True)
        ]
        return assemble_batch(chosen, dtype)


def batch_source(molecules: Sequence[Data]) -> tuple[Any, str | None]:
    """What makes the batches of ``molecules``, and why a list could not be packed.

    The first item has a ``batch(positions, conformers, dtype)`` method. Molecules that gather
    their own batches (packed ones, and shard views:
    :meth:`~mimoe_core.shards.ShardSequence.batch`) are returned as they are; a non-empty list
    or tuple is packed (:class:`~mimoe_core.packed_molecules.PackedMolecules`). Anything else
    is :class:`AssembledOneByOne`; the second item is the reason only for a list that cannot
    be packed (``None`` otherwise).
    """
    if hasattr(molecules, "batch"):
        return molecules, None
    if not isinstance(molecules, (list, tuple)) or len(molecules) == 0:
        return AssembledOneByOne(molecules), None
    try:
        return PackedMolecules(molecules), None
    except ValueError as err:
        return AssembledOneByOne(molecules), str(err)


@torch.no_grad()
def run_model(
    model: ScaledMIMoE | MIMoE,
    data_list: Sequence[Data],
    task: str,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Predictions and routing of ``model`` (put in eval mode) for featurized molecules.

    Args:
        model: a :class:`~mimoe_core.scaling.ScaledMIMoE` (its eval outputs are in the
            original units), or a bare :class:`MIMoE` (its outputs taken as they are).
        data_list: featurized molecules.
        task: ``"regression"`` or ``"classification"`` (outputs are logits; probabilities
            are returned).
        batch_size: molecules per forward pass.
        device: where ``model`` is and the forward passes run.

    Returns:
        ``prediction`` [M, num_targets] (original units; probabilities for classification),
        ``alpha`` [M, K], ``expert_predictions`` [M, K, num_targets] (original units for
        regression, logits for classification; NaN where an expert did not run), and with a
        mean-variance head ``std`` [M, num_targets] (original units).

    Conformer ensembles (molecules featurized with ``keep_conformers`` > 1): the model runs
    on each conformer, and the outputs are the means over them (``expert_predictions``: over
    the conformers the expert ran on; ``std``: the root of the mean variance), plus
    ``conformer_std`` [M, num_targets], the sample std (ddof=1) of the prediction over the
    conformers, and ``conformer_predictions`` [M, C, num_targets].
    """
    num_conformers = conformers_per_molecule(data_list)
    if num_conformers > 1:
        return _averaged_over_conformers(model, data_list, task, batch_size, device, num_conformers)
    model.eval()
    device = torch.device(device)
    dtype = next(model.parameters()).dtype
    preds, alphas, experts, stds = [], [], [], []  # on the device until the end
    for batch in _batches(data_list, batch_size, device, dtype):
        out = model.forward_batch(batch)
        if out.log_var is not None:
            stds.append(torch.exp(0.5 * out.log_var.float()))
        y, per_expert = out.y.float(), out.expert_predictions.float()
        if task != "regression":
            y = torch.sigmoid(y)
        per_expert = per_expert.masked_fill(~out.selected.unsqueeze(-1), float("nan"))
        preds.append(y)
        alphas.append(out.alpha.float())
        experts.append(per_expert)
    num_t, num_k = model.out_channels, model.num_experts
    if not preds:
        return {
            "prediction": np.zeros((0, num_t)),
            "alpha": np.zeros((0, num_k)),
            "expert_predictions": np.zeros((0, num_k, num_t)),
        }
    found = {
        "prediction": _to_numpy(preds),
        "alpha": _to_numpy(alphas),
        "expert_predictions": _to_numpy(experts),
    }
    if stds:
        found["std"] = _to_numpy(stds)
    return found


def _batches(
    data_list: Sequence[Data], batch_size: int, device: torch.device, dtype: torch.dtype
) -> Iterator[Batch]:
    """``data_list`` in order, ``batch_size`` molecules at a time, as batches on ``device``.

    Made by :func:`batch_source`: shard views gather their own; molecules in memory are
    packed a chunk of at least :data:`PACKED_CHUNK` at a time (whole batches), so the packed
    copy stays a few MB whatever the number of molecules. The same batches either way.
    """
    whole = hasattr(data_list, "batch")
    per_chunk = len(data_list) if whole else batch_size * -(-PACKED_CHUNK // batch_size)
    for first in range(0, len(data_list), max(per_chunk, 1)):
        chunk = data_list if whole else list(data_list[first : first + per_chunk])
        source, _ = batch_source(chunk)
        for start in range(0, len(chunk), batch_size):
            positions = list(range(start, min(start + batch_size, len(chunk))))
            yield source.batch(positions, None, dtype).to(device)


def _to_numpy(parts: list[torch.Tensor]) -> np.ndarray:
    """The batches' outputs, concatenated and brought to the host once, as float64."""
    return torch.cat(parts).double().cpu().numpy()


def _averaged_over_conformers(model, data_list, task, batch_size, device, num_conformers):
    """:func:`run_model` on every conformer of an ensemble, averaged (see there)."""
    runs = [
        run_model(model, [conformer_view(d, c) for d in data_list], task, batch_size, device)
        for c in range(num_conformers)
    ]
    stacked = {k: np.stack([r[k] for r in runs], axis=1) for k in runs[0]}  # [M, C, ...]
    found = {
        "prediction": stacked["prediction"].mean(axis=1),
        "alpha": stacked["alpha"].mean(axis=1),
        "conformer_std": stacked["prediction"].std(axis=1, ddof=1),
        "conformer_predictions": stacked["prediction"],
    }
    per_expert = stacked["expert_predictions"]
    ran = np.isfinite(per_expert).sum(axis=1)
    total = np.nansum(per_expert, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        found["expert_predictions"] = np.where(ran > 0, total / np.maximum(ran, 1), np.nan)
    if "std" in stacked:
        found["std"] = np.sqrt(np.mean(stacked["std"] ** 2, axis=1))
    return found


@torch.no_grad()
def run_embeddings(
    model: ScaledMIMoE | MIMoE,
    data_list: Sequence[Data],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """:func:`run_model`'s batches through :meth:`MIMoE.embed_batch` (eval mode).

    Returns ``mixture`` [M, H], ``experts`` [M, K, H] (NaN where an expert was not
    selected) and ``alpha`` [M, K], float64.
    """
    model.eval()
    device = torch.device(device)
    dtype = next(model.parameters()).dtype
    moe = model.moe if isinstance(model, ScaledMIMoE) else model
    mixtures, experts, alphas = [], [], []
    for batch in _batches(data_list, batch_size, device, dtype):
        out = moe.embed_batch(batch)
        per_expert = out.experts.float().masked_fill(~out.selected.unsqueeze(-1), float("nan"))
        mixtures.append(out.mixture.float())
        experts.append(per_expert)
        alphas.append(out.alpha.float())
    num_k, hidden = moe.num_experts, moe.head.in_features
    if not mixtures:
        return {
            "mixture": np.zeros((0, hidden)),
            "experts": np.zeros((0, num_k, hidden)),
            "alpha": np.zeros((0, num_k)),
        }
    return {
        "mixture": _to_numpy(mixtures),
        "experts": _to_numpy(experts),
        "alpha": _to_numpy(alphas),
    }
