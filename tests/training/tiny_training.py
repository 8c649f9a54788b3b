"""What the training tests share: a tiny model config and fast CPU settings.

The featurized FreeSolv fixtures (``freesolv40``, ``freesolv120``) are in ``tests/conftest.py``.

Imported by name (``from tiny_training import TINY, quick``): pytest puts this folder on
``sys.path`` because it has no ``__init__.py``.
"""

from __future__ import annotations

from mimoe_core.training import TrainSettings

TINY = {"expert": {"hidden_channels": 8, "num_layers": 1, "num_filters": 8, "num_rbf": 10},
        "gate": {"name": "mlp", "hidden_channels": 8}}  # fmt: skip


def quick(epochs=2, **kw) -> TrainSettings:
    """Settings for a few seconds of training on the CPU: batches of 16, no progress bar."""
    return TrainSettings(epochs=epochs, batch_size=16, progress=False, device="cpu", **kw)
