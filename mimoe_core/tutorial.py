"""Settings shared by the tutorial notebooks: one switch between a smoke run and the real one.

Each notebook's first code cell calls :func:`tutorial_scale`. Under CI, or with the
environment variable ``SMOKE_TEST`` set to a true value, it returns tiny settings (few
molecules, one or two epochs) so the whole set runs in minutes on 2 CPU cores; otherwise
the real sizes, meant for a GPU (and still usable on a CPU, slowly).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FALSE = {"", "0", "false", "no", "off"}


def smoke_test() -> bool:
    """True under CI (``CI`` set) or when ``SMOKE_TEST`` is set to a true value.

    ``SMOKE_TEST=0`` forces the full run even under CI.
    """
    flag = os.environ.get("SMOKE_TEST")
    if flag is not None:
        return flag.strip().lower() not in _FALSE
    return os.environ.get("CI", "").strip().lower() not in _FALSE


@dataclass(frozen=True)
class TutorialScale:
    """How big the tutorial runs are.

    Attributes:
        smoke: whether this is the smoke-test scale.
        limit: molecules per dataset (None: all).
        epochs: training epochs.
        patience: early-stopping patience in epochs.
        hidden: expert width.
        batch_size: molecules per batch.
        seeds: seeds of the multi-seed runs.
        n_jobs: conformer worker processes (None: all cores).
    """

    smoke: bool
    limit: int | None
    epochs: int
    patience: int
    hidden: int
    batch_size: int
    seeds: tuple[int, ...]
    n_jobs: int | None = None


def tutorial_scale(smoke: bool | None = None) -> TutorialScale:
    """The tutorial settings: tiny under :func:`smoke_test`, full otherwise.

    Example:
        >>> tutorial_scale(smoke=True).epochs
        2
    """
    if smoke_test() if smoke is None else smoke:
        return TutorialScale(
            smoke=True,
            limit=60,
            epochs=2,
            patience=2,
            hidden=16,
            batch_size=16,
            seeds=(0,),
            n_jobs=2,
        )
    return TutorialScale(
        smoke=False, limit=None, epochs=200, patience=30, hidden=128, batch_size=64, seeds=(0, 1, 2)
    )


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible notebook."""
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - user code in notebooks draws from the global state
    torch.manual_seed(seed)


def runs_dir(name: str) -> Path:
    """The folder for a notebook's outputs: ``$MIMOE_RUNS_DIR/name``, default ``runs/name``."""
    return Path(os.environ.get("MIMOE_RUNS_DIR", "runs")) / name


def project_root() -> Path | None:
    """The mimoe checkout above the current folder, or None outside a checkout.

    The checkout is the folder holding ``pyproject.toml`` and ``mimoe_core/``; an installed
    package has none.
    """
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "pyproject.toml").is_file() and (folder / "mimoe_core").is_dir():
            return folder
    return None
