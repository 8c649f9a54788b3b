"""Checkpoints: weights, model config, target scaling and featurization settings.

A checkpoint is a plain dict of tensors, numbers, strings and lists, written with
``torch.save`` and read with ``torch.load(..., weights_only=True)``: loading never unpickles
arbitrary objects, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import mimoe_core
from mimoe_core import run_folder
from mimoe_core.conformers import ConformerSettings
from mimoe_core.models import MIMoE, create_model
from mimoe_core.training.scaling import TargetScaler

CHECKPOINT_FORMAT = "mimoe-checkpoint/1"
#: What a checkpoint written before ``featurization`` was recorded was trained on: the trainer
#: and the CLI only ever featurized normalized trajectories of descriptor version 1.
LEGACY_FEATURIZATION = {"normalize_descriptors": True, "descriptor_version": 1}
_REQUIRED = ("format", "model_config", "state_dict", "task", "targets", "scaler", "radii")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model in eval mode and everything needed to use it.

    Attributes:
        model: the :class:`MIMoE`, weights loaded, on the CPU, in eval mode.
        task: ``"regression"`` or ``"classification"``.
        targets: target names, one per model output.
        scaler: the regression target scaling of the training split.
        radii: the filtration grid [T] in Å the gate was trained on.
        conformer_settings: how training conformers were made (used again for prediction).
        featurization: the other settings the model's inputs depend on
            (``normalize_descriptors``, ``descriptor_version``), replayed by prediction.
        extra: the rest of the payload (epoch, metrics, optimizer state for resuming...).
    """

    model: MIMoE
    task: str
    targets: list[str]
    scaler: TargetScaler
    radii: list[float]
    conformer_settings: ConformerSettings
    featurization: dict[str, Any] = field(default_factory=lambda: dict(LEGACY_FEATURIZATION))
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: MIMoE,
    task: str,
    targets: list[str],
    scaler: TargetScaler,
    radii: list[float],
    conformer_settings: ConformerSettings,
    featurization: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Write a checkpoint; ``extra`` holds plain values (tensors, numbers, str, lists, dicts).

    The file is written to a temporary name and renamed, so an interruption never leaves a
    half-written checkpoint under ``path``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": mimoe_core.__version__,
        "model_config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "task": task,
        "targets": list(targets),
        "scaler": scaler.to_dict(),
        "radii": [float(r) for r in radii],
        "conformer_settings": conformer_settings.to_dict(),
        "featurization": dict(featurization or LEGACY_FEATURIZATION),
        **extra,
    }
    payload["sha256"] = payload_digest(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def payload_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of everything in a checkpoint but its own digest: tensor bytes and plain values.

    torch's zip reader does not check its CRCs, so bytes overwritten inside the weights would
    load silently; the digest makes such damage an error.
    """
    digest = hashlib.sha256()

    def walk(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{where}:{t.dtype}:{tuple(value.shape)}:".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                walk(value[key], f"{where}/{key}")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        else:
            digest.update(f"{where}={json.dumps(value, default=str)};".encode())

    walk({k: v for k, v in payload.items() if k != "sha256"}, "")
    return digest.hexdigest()


def read_payload(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded with ``weights_only=True`` and checked.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, not a checkpoint, or from an unknown format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / run_folder.MODEL
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load on damaged bytes raises anything
        # (IndexError, KeyError, UnicodeDecodeError...): every failure here means a bad file.
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable mimoe checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected format {CHECKPOINT_FORMAT!r}, found {found!r}")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    # Checkpoints written before the digest existed have none; they load as before.
    if "sha256" in payload and payload["sha256"] != payload_digest(payload):
        raise ValueError(f"{path} is not a readable mimoe checkpoint (its contents do not match "
                         "its checksum: the file is damaged)")  # fmt: skip
    return payload


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint file (or a run folder holding ``model.pt``) safely.

    Raises:
        FileNotFoundError: no such file.
        ValueError: corrupt file, unknown format, or weights that do not fit the config.
    """
    payload = read_payload(path)
    model = create_model(payload["model_config"])
    result = model.load_state_dict(payload["state_dict"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: weights do not match the model config (missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    model.eval()
    own = _REQUIRED + ("conformer_settings", "featurization", "sha256")
    rest = {k: v for k, v in payload.items() if k not in own}
    return Checkpoint(
        model=model,
        task=payload["task"],
        targets=list(payload["targets"]),
        scaler=TargetScaler(**payload["scaler"]),
        radii=list(payload["radii"]),
        conformer_settings=ConformerSettings(**payload.get("conformer_settings", {})),
        featurization={**LEGACY_FEATURIZATION, **payload.get("featurization", {})},
        extra=rest,
    )
