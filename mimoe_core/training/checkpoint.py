"""Checkpoints: re-exported from :mod:`mimoe_core.trained`, where the format now lives.

:class:`Checkpoint` is :class:`~mimoe_core.trained.TrainedModel` under its old name.
"""

from mimoe_core.trained import (
    CHECKPOINT_FORMAT,
    LEGACY_FEATURIZATION,
    TrainedModel,
    load_checkpoint,
    payload_digest,
    read_payload,
    save_checkpoint,
)

Checkpoint = TrainedModel

__all__ = [
    "CHECKPOINT_FORMAT",
    "LEGACY_FEATURIZATION",
    "Checkpoint",
    "TrainedModel",
    "load_checkpoint",
    "payload_digest",
    "read_payload",
    "save_checkpoint",
]
