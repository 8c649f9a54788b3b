"""What a training run is told, how far it has got, and what it returns.

:class:`TrainSettings` and :class:`TrainState` are plain dataclasses, saved as dicts in
checkpoints and ``metrics.json``; :class:`TrainResult` is what :func:`~mimoe_core.training.train`
returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mimoe_core.calibration import METHODS, check_coverage
from mimoe_core.training.transfer import FREEZE_CHOICES

if TYPE_CHECKING:
    import pandas as pd

    from mimoe_core.scaling import ScaledMIMoE, TargetScaler


@dataclass
class TrainSettings:
    """Optimization settings (all stored in the checkpoint and ``metrics.json``).

    Attributes:
        epochs: maximum epochs, default 100.
        batch_size: molecules per step, default 32.
        lr: learning rate, default 5e-4.
        weight_decay: default 0.0.
        optimizer: ``"adamw"`` (default) or ``"adam"``.
        scheduler: ``"plateau"`` (halve the LR after ``patience // 2`` epochs without
            improvement; default), ``"cosine"`` or ``"none"``.
        patience: early stopping after this many epochs without a better validation
            metric, default 20.
        clip_norm: gradient-norm clipping, default 10.0 (0 disables).
        seed: seeds model initialization, shuffling and noise, default 0.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        amp: bfloat16 autocast on CUDA, default True (ignored on the CPU).
        deterministic: deterministic algorithms on the CPU, default True.
        progress: one tqdm bar over the epochs with the last and best validation score,
            default True.
        init_from: a trained run (folder or checkpoint) whose weights start this one
            (see :mod:`mimoe_core.training.transfer`); default None, a fresh model.
        freeze: with ``init_from``, ``"experts"`` or ``"gate"`` stay fixed; default
            ``"none"``.
        ema_decay: with a value in (0, 1), validation, the best epoch and ``model.pt`` use
            an exponential moving average of the weights (:mod:`mimoe_core.training.ema`);
            default 0.999 (``benchmarks/results/recipe_cpu.md``: better on FreeSolv on 3 of
            3 splits, no change on ESOL); 0.0 uses the weights themselves.
        warmup_epochs: the learning rate rises linearly from ``lr / steps`` to ``lr`` over
            the optimizer steps of this many first epochs, and the schedule starts after
            them; default 0 (no warmup).
        cutoff_lr_scale: for a model with learnable cutoffs, their learning rate is
            ``lr * cutoff_lr_scale`` (warmup and schedule scale it alike); 0 holds them at
            their starting values (the control with the same bases). Default 1.0.
        compile: compile the experts' message-passing blocks with ``torch.compile``
            (:mod:`mimoe_core.models.compiled`) for the run, default False. The same model
            and weights, its numbers equal up to rounding; the first epoch pays the
            compilation (``benchmarks/results/compile_cpu.md``: the time it costs and saves).
        fused_optimizer: step Adam/AdamW with torch's fused kernel (``fused=True``: one
            kernel over all parameters instead of a loop of small ones per tensor) where
            every parameter is a floating tensor on the CPU or a CUDA device, default True.
            The same update, its rounding differs; False uses the per-tensor loop
            (``benchmarks/results/ddp_step_cpu.md``: what it saves per step).
        loader_workers: worker processes that assemble the next training batches while a
            step runs (:mod:`mimoe_core.training.batches`), default 0 (each batch is made in
            line, when its step starts). The same batches in the same order, so the same
            numbers; meant for GPUs, which otherwise wait for the CPU (not yet measured on
            one); on the CPU they did not pay (``benchmarks/results/loader_cpu.md``).
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    scheduler: str = "plateau"
    patience: int = 20
    clip_norm: float = 10.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    deterministic: bool = True
    progress: bool = True
    init_from: str | None = None
    freeze: str = "none"
    uncertainty: str = "none"
    calibration: str = "conformal"
    coverage: float = 0.9
    mve_warmup: int = 5
    ema_decay: float = 0.999
    warmup_epochs: int = 0
    cutoff_lr_scale: float = 1.0
    compile: bool = False
    fused_optimizer: bool = True
    loader_workers: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if self.scheduler not in ("plateau", "cosine", "none"):
            raise ValueError(f"scheduler must be plateau, cosine or none, got {self.scheduler!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.freeze not in FREEZE_CHOICES:
            raise ValueError(f"freeze must be one of {FREEZE_CHOICES}, got {self.freeze!r}")
        if self.freeze != "none" and not self.init_from:
            raise ValueError("freeze holds trained weights fixed: it needs init_from")
        if self.uncertainty not in ("none", "experts", "mve", "conformers"):
            raise ValueError(
                "a single run's uncertainty is none, experts, mve or conformers, got "
                f"{self.uncertainty!r}"
                " (an ensemble is trained with train_ensemble / --ensemble-size)"
            )
        if self.calibration not in METHODS:
            raise ValueError(f"calibration must be one of {METHODS}, got {self.calibration!r}")
        check_coverage(self.coverage)
        if not (self.ema_decay == 0.0 or 0.0 < self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be 0 (off) or in (0, 1), got {self.ema_decay}")
        if not (math.isfinite(self.cutoff_lr_scale) and self.cutoff_lr_scale >= 0):
            raise ValueError(f"cutoff_lr_scale must be finite and >= 0, got {self.cutoff_lr_scale}")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs} of {self.epochs}"
            )


@dataclass
class TrainState:
    """How far a run has got; saved in ``last.pt`` as ``train_state`` (a plain dict).

    Attributes:
        epoch: epochs completed (the next epoch to run).
        best: the best validation score so far (None before the first epoch).
        best_epoch: the epoch that scored ``best`` (-1 before the first epoch).
        bad_epochs: epochs since the last improvement (early stopping counts these).
        history: one row per completed epoch (the ``history.csv`` content).
    """

    epoch: int = 0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's ``train_state`` entry."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainState:
        """From a checkpoint's ``train_state`` entry (extra keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass
class TrainResult:
    """What :func:`~mimoe_core.training.train` returns (and writes to ``out_dir``).

    Attributes:
        model: the best model (lowest validation loss of the selection metric), eval mode,
            with the training split's target scaling inside (original units in eval mode).
        metrics: the ``metrics.json`` content.
        history: one row per epoch (the ``history.csv`` content).
        scaler: target scaling fitted on the training split (the model's buffers).
    """

    model: ScaledMIMoE
    metrics: dict
    history: pd.DataFrame
    scaler: TargetScaler
