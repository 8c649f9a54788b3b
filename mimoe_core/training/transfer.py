"""Transfer learning: start a run from a trained one, optionally with parts frozen.

The source must have the same architecture (backbone, variant, cutoffs, expert and gate
settings) and read the same inputs (filtration grid, descriptor settings): its experts and
gate are copied as they are. The head is copied when the number of targets matches and
re-initialized otherwise; the target scaling is always fitted on the new training split.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mimoe_core.trained import TrainedModel

#: What ``--freeze`` may hold fixed while fine-tuning.
FREEZE_CHOICES = ("none", "experts", "gate")

#: The config keys that decide the shapes of the copied weights.
ARCHITECTURE_KEYS = (
    "backbone",
    "variant",
    "cutoffs",
    "expert",
    "gate",
    "num_descriptors",
    "variance_head",
    "atom_attributes",
    "learnable_cutoffs",
    "shared_trunk",
    "one_expert",
    "plain",
)


def load_source(path: str | Path) -> TrainedModel:
    """The trained run (folder or checkpoint file) to start from, with a clear error."""
    try:
        return TrainedModel.load(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--init-from {path}: no trained model there ({err})") from None


def check_compatible(
    config: Mapping[str, Any],
    source: TrainedModel,
    radii: np.ndarray,
    featurization: Mapping[str, Any],
    where: str | Path = "the source run",
) -> None:
    """Raise ValueError naming what differs between the new run and the source.

    Args:
        config: the new run's resolved model config.
        source: the trained model to start from.
        radii: the new dataset's filtration grid in Å.
        featurization: the new dataset's descriptor settings.
        where: the source's path, for the messages.
    """
    theirs = source.model.config
    differ = [k for k in ARCHITECTURE_KEYS if _plain(config.get(k)) != _plain(theirs.get(k))]
    if differ:
        detail = "; ".join(f"{k}: {theirs.get(k)!r} there, {config.get(k)!r} here" for k in differ)
        raise ValueError(
            f"cannot start from {where}: its architecture differs "
            f"({detail}). Leave the model options out to reuse the source's."
        )
    theirs_grid, ours_grid = np.asarray(source.radii, float), np.asarray(radii, float)
    if theirs_grid.shape != ours_grid.shape or not np.allclose(theirs_grid, ours_grid):
        raise ValueError(
            "the source run's gate read another filtration grid "
            f"({len(theirs_grid)} radii, {theirs_grid[0]:g}-{theirs_grid[-1]:g} Å; this data has "
            f"{len(ours_grid)}); featurize with its grid"
        )
    # Only the descriptors: whether the model reads atom attributes is an architecture key.
    descriptors = ("normalize_descriptors", "descriptor_version")
    theirs = {k: source.featurization.get(k) for k in descriptors}
    ours = {k: featurization.get(k) for k in descriptors}
    if theirs != ours:
        raise ValueError(
            f"the source run's descriptors were computed with {theirs}, this data with {ours}"
        )


def copy_weights(model: nn.Module, source: TrainedModel) -> list[str]:
    """Copy the source's weights into ``model`` (a ScaledMIMoE); the names left as they were.

    Everything is copied except the target scaling buffers, and the head when its shape
    differs (another number of targets).
    """
    theirs = source.model.state_dict()
    ours = model.state_dict()
    kept = [
        name
        for name, value in ours.items()
        if name.startswith("output_transform.") or theirs[name].shape != value.shape
    ]
    model.load_state_dict({**ours, **{k: v for k, v in theirs.items() if k not in kept}})
    return kept


def freeze(model: nn.Module, part: str) -> int:
    """Hold ``part`` (one of :data:`FREEZE_CHOICES`) fixed; the number of frozen tensors."""
    if part not in FREEZE_CHOICES:
        raise ValueError(f"freeze must be one of {FREEZE_CHOICES}, got {part!r}")
    if part == "none":
        return 0
    module = model.experts if part == "experts" else model.gate
    if module is None:
        raise ValueError(f"--freeze {part}: this model variant has no {part}")
    params = list(module.parameters())
    if part == "experts" and getattr(model, "trunk", None) is not None:
        params += list(model.trunk.parameters())  # the experts' shared first blocks
    for param in params:
        param.requires_grad_(False)
    return len(params)


def _plain(value: Any) -> Any:
    """Config values compared as JSON would see them (tuples as lists, ints as floats)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
