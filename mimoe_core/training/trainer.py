"""Training loop: masked multi-task loss, load balancing, early stopping, checkpoints, resume.

Reproducibility: the shuffling order and the random state of epoch e (dropout, noisy gating)
come from ``seed`` and e alone, so a run resumed from ``last.pt`` after an interruption
continues exactly as the uninterrupted run would have (on the CPU, deterministic mode).

:func:`train` is the entry point; it builds a :class:`TrainingRun` (data, model, optimizer,
schedule and a :class:`TrainState`), resumes it if asked, and calls :meth:`TrainingRun.fit`.
Batches are made by :func:`mimoe_core.trained.prepare_batch`, as in evaluation and prediction.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mimoe_core import keys, run_folder
from mimoe_core.data.splits import Split
from mimoe_core.featurize import FeaturizedDataset
from mimoe_core.models import create_model, load_config
from mimoe_core.scaling import ScaledMIMoE, TargetScaler
from mimoe_core.trained import (
    LEGACY_FEATURIZATION,
    TrainedModel,
    prepare_batch,
    read_payload,
    resolve_device,
    run_model,
    save_checkpoint,
)
from mimoe_core.training.metrics import (
    SELECTION_METRIC,
    compute_metrics,
    masked_log_loss,
    scorable_tasks,
)


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
        progress: tqdm bar per epoch, default True.
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

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if self.scheduler not in ("plateau", "cosine", "none"):
            raise ValueError(f"scheduler must be plateau, cosine or none, got {self.scheduler!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")


@dataclass
class TrainResult:
    """What :func:`train` returns (and writes to ``out_dir``).

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


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, task: str):
    """Mean loss over present labels: MSE (regression) or BCE with logits (classification)."""
    target = torch.where(mask, target, torch.zeros_like(target))
    if task == "regression":
        per = F.mse_loss(pred, target, reduction="none")
    else:
        per = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return (per * mask).sum() / mask.sum().clamp_min(1)


def _subset(dataset: FeaturizedDataset, idx) -> list:
    return [dataset.data_list[i] for i in idx]


def _check_split(dataset: FeaturizedDataset, split: Split) -> None:
    n = len(dataset)
    for name in ("train", "val", "test"):
        idx = np.asarray(getattr(split, name))
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"split.{name} indexes molecules outside 0..{n - 1}")
    if len(split.train) == 0 or len(split.val) == 0:
        raise ValueError("the split needs at least one training and one validation molecule")


def _make_scheduler(optimizer, settings: TrainSettings, minimize: bool):
    if settings.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min" if minimize else "max", factor=0.5,
            patience=max(1, settings.patience // 2),
        )  # fmt: skip
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    return None


def _step_scheduler(scheduler, score: float, maximize: bool) -> None:
    """Advance the LR schedule after an epoch with validation ``score``."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        # A NaN score is no improvement: the worst value for the scheduler's mode
        # (+inf would count as the best value ever in "max" mode).
        worst = float("-inf") if maximize else float("inf")
        scheduler.step(score if np.isfinite(score) else worst)
    else:
        scheduler.step()


@contextlib.contextmanager
def _deterministic(enabled: bool):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def train(
    dataset: FeaturizedDataset,
    split: Split,
    model_config: str | Path | Mapping[str, Any] | None = None,
    settings: TrainSettings | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train MI-MoE on a featurized dataset and evaluate the best epoch on val and test.

    Loss per step: masked task loss (MSE on standardized targets, or BCE with logits) plus
    ``balance_weight`` times the load-balancing loss. The best epoch by the validation
    metric (RMSE, or ROC-AUC) is kept.

    Args:
        dataset: from :func:`mimoe_core.featurize.featurize`; its labels, conformers and
            descriptor trajectories are used as they are.
        split: indices into ``dataset`` (:func:`mimoe_core.data.make_split`).
        model_config: a config for :func:`mimoe_core.models.create_model`;
            ``out_channels`` is set to the number of targets and ``radii`` to the data's grid.
        settings: :class:`TrainSettings` (defaults when None).
        out_dir: if given, writes ``model.pt`` (best), ``last.pt`` (for resuming),
            ``history.csv``, ``metrics.json``, ``splits.json``, ``skipped.csv``,
            ``test_predictions.csv`` and ``test_explained/`` (the test set's
            :class:`~mimoe_core.results.PredictionResult` with labels and structures); the
            layout is :mod:`mimoe_core.run_folder`'s, and :func:`~mimoe_core.run_folder.load_run`
            reads it back.
        resume: continue from ``out_dir/last.pt`` if it exists.

    Returns:
        :class:`TrainResult`.
    """
    run = TrainingRun(dataset, split, model_config, settings, out_dir)
    if resume:
        run.resume()
    return run.fit()


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


class TrainingRun:
    """One training run, the object :func:`train` drives (TorchMD-Net's ``LNNP`` shape).

    Construction validates the inputs, fits the target scaling on the training split, builds
    the model (seeded by ``settings.seed``), optimizer and LR schedule; :meth:`resume`
    continues from ``out_dir/last.pt``; :meth:`fit` trains, keeps the best epoch, evaluates
    it and writes the run folder.

    Args:
        dataset, split, model_config, settings, out_dir: as for :func:`train`.

    Attributes:
        model: the :class:`~mimoe_core.scaling.ScaledMIMoE` being trained.
        state: the :class:`TrainState`.
        best_state: the state dict of the best epoch so far.
    """

    def __init__(
        self,
        dataset: FeaturizedDataset,
        split: Split,
        model_config: str | Path | Mapping[str, Any] | None = None,
        settings: TrainSettings | None = None,
        out_dir: str | Path | None = None,
    ) -> None:
        self.settings = settings = settings or TrainSettings()
        self.dataset, self.split = dataset, split
        self.task, self.targets = dataset.table.task, list(dataset.table.target_names)
        if not self.targets:
            raise ValueError("the dataset has no target columns to train on")
        _check_split(dataset, split)
        if len(split.test) == 0:
            # stacklevel: warn at the caller of train(), which builds this run.
            warnings.warn("the split has no test molecules; metrics.json will have no test "
                          "scores", stacklevel=3)  # fmt: skip
        self.device = resolve_device(settings.device)
        config = load_config(model_config)
        config["out_channels"] = len(self.targets)
        config["radii"] = _grid_spec(dataset.radii)
        self.train_list, self.val_list = _subset(dataset, split.train), _subset(dataset, split.val)
        self.scaler = TargetScaler.fit(_labels(self.train_list), self.task)
        self.val_labels = _labels(self.val_list)
        self.metric_name, self.maximize = _selection_metric(self.task, self.val_labels)

        torch.manual_seed(settings.seed)
        self.model = ScaledMIMoE(create_model(config), self.scaler).to(self.device)
        opt_cls = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=settings.lr,
                                 weight_decay=settings.weight_decay)  # fmt: skip
        self.scheduler = _make_scheduler(self.optimizer, settings, minimize=not self.maximize)
        self.state = TrainState()
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.out = Path(out_dir) if out_dir is not None else None
        self.use_amp = settings.amp and self.device.type == "cuda"

    @property
    def common(self) -> dict[str, Any]:
        """What every checkpoint of the run records besides the weights."""
        return {
            "task": self.task, "targets": self.targets, "radii": list(self.dataset.radii),
            "conformer_settings": self.dataset.settings,
            "featurization": self.dataset.feature_settings(),
        }  # fmt: skip

    def trained_model(self) -> TrainedModel:
        """The model as it is now, with what using it needs."""
        common = self.common
        return TrainedModel(self.model, self.task, self.targets, common["radii"],
                            common["conformer_settings"], common["featurization"])  # fmt: skip

    def resume(self) -> bool:
        """Continue from ``out_dir/last.pt`` if it exists; whether it did.

        Raises:
            ValueError: ``last.pt`` was trained on data featurized differently.
        """
        if self.out is None or not (self.out / run_folder.LAST).is_file():
            return False
        path = self.out / run_folder.LAST
        payload = read_payload(path)
        _check_same_inputs(payload, self.common, path)
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        self.best_state = payload["best_state_dict"]
        self.state = TrainState.from_dict(payload["train_state"])
        return True

    def fit(self) -> TrainResult:
        """Train up to ``settings.epochs`` (early stopping), then evaluate and write the run."""
        settings, state = self.settings, self.state
        with _deterministic(settings.deterministic and self.device.type == "cpu"):
            for epoch in range(state.epoch, settings.epochs):
                if epoch > 0 and state.bad_epochs >= settings.patience:
                    break  # resumed from a run that had already stopped early
                if self.run_epoch(epoch):
                    break
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        history = pd.DataFrame(state.history)
        metrics = self.final_metrics()
        if self.out is not None:
            self.write_run(history, metrics)
        return TrainResult(model=self.model, metrics=metrics, history=history, scaler=self.scaler)

    def run_epoch(self, epoch: int) -> bool:
        """Train one epoch, validate, checkpoint; whether early stopping ends the run."""
        settings, state = self.settings, self.state
        start = time.perf_counter()
        row = self.train_epoch(epoch)
        val = run_model(self.model, self.val_list, self.task, settings.batch_size, self.device)
        score = _selection_score(self.task, self.metric_name, val["prediction"], self.val_labels)
        _step_scheduler(self.scheduler, score, self.maximize)
        if _better(score, state.best, self.maximize):
            state.best, state.best_epoch, state.bad_epochs = float(score), epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            if self.out is not None:
                save_checkpoint(self.out / run_folder.MODEL, self.model, **self.common,
                                epoch=epoch)  # fmt: skip
        else:
            state.bad_epochs += 1
        row.update(
            epoch=epoch, **{f"val_{self.metric_name}": score},
            lr=self.optimizer.param_groups[0]["lr"],
            seconds=round(time.perf_counter() - start, 3),
        )  # fmt: skip
        state.history.append(row)
        state.epoch = epoch + 1
        if self.out is not None:
            self.save_last()
        return state.bad_epochs >= settings.patience

    def save_last(self) -> None:
        """Write ``last.pt``: weights, optimizer, schedule, best weights and state."""
        save_checkpoint(
            self.out / run_folder.LAST, self.model, **self.common,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else {},
            best_state_dict=self.best_state, train_state=self.state.to_dict(),
        )  # fmt: skip

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the shuffled training set; returns the epoch's averages."""
        model, settings, train_list = self.model, self.settings, self.train_list
        model.train()
        torch.manual_seed(settings.seed * 100_003 + epoch)  # dropout, noisy gating
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
        order = torch.randperm(len(train_list), generator=gen).tolist()
        dtype = next(model.parameters()).dtype
        sums = {"loss": 0.0, "task_loss": 0.0, "aux_loss": 0.0}
        usage = torch.zeros(model.num_experts)
        steps = range(0, len(order), settings.batch_size)
        if settings.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"epoch {epoch}", leave=False, unit="batch")
        for start in steps:
            chosen = [train_list[i] for i in order[start : start + settings.batch_size]]
            batch = prepare_batch(chosen, self.device, dtype)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
                out = model.forward_batch(batch)
            # Train mode: the model's outputs are standardized, so are the regression targets.
            target = (
                model.output_transform.transform(batch[keys.Y].to(out.y.dtype))
                if self.task == "regression"
                else batch[keys.Y]
            )
            task_loss = masked_loss(out.y.float(), target.float(), batch[keys.Y_MASK], self.task)
            loss = task_loss + model.balance_weight * out.aux_loss.float()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
            self.optimizer.step()
            n = batch.num_graphs
            sums["loss"] += loss.item() * n
            sums["task_loss"] += task_loss.item() * n
            sums["aux_loss"] += out.aux_loss.item() * n
            usage += out.selected.float().sum(0).cpu()
        total = max(len(order), 1)
        row = {k: v / total for k, v in sums.items()}
        row.update({f"usage_{e + 1}": float(u) / total for e, u in enumerate(usage)})
        return row

    def final_metrics(self) -> dict[str, Any]:
        """The ``metrics.json`` content: the run's facts and the model's val/test scores."""
        model, split, settings = self.model, self.split, self.settings
        result: dict[str, Any] = {
            "task": self.task,
            "targets": self.targets,
            "split": getattr(split, "method", None),
            "seed": settings.seed,
            "n_train": len(split.train),
            "n_val": len(split.val),
            "n_test": len(split.test),
            "n_skipped": len(self.dataset.skipped),
            "selection_metric": f"val_{self.metric_name}",
            "best_epoch": self.state.best_epoch,
            "epochs_run": self.state.epoch,
            # The experts' own cutoffs: one for `one` and `single` routings, not the config's K.
            "model": {
                **{k: model.config[k] for k in ("backbone", "routing", "top_k")},
                "cutoffs": [float(c) for c in model.cutoffs],
            },
            "settings": asdict(settings),
        }
        for name in ("val", "test"):
            part = _subset(self.dataset, getattr(split, name))
            if not part:
                result[name] = {}
                continue
            out = run_model(model, part, self.task, settings.batch_size, self.device)
            result[name] = compute_metrics(self.task, out["prediction"], _labels(part))
        return result

    def write_run(self, history: pd.DataFrame, metrics: dict) -> None:
        """The plain files of the run folder, with the test set explained."""
        from mimoe_core.data.table import skipped_frame

        dataset, split = self.dataset, self.split
        test = _subset(dataset, split.test)
        explained = self.trained_model().explain(test, self.settings.batch_size, self.device,
                                                 with_labels=True)  # fmt: skip
        run_folder.write_run(
            self.out, metrics=metrics, history=history,
            split=split, split_rows=[int(d[keys.ROW]) for d in dataset.data_list],
            skipped=skipped_frame(dataset.skipped), test=explained,
        )  # fmt: skip


def _check_same_inputs(payload: dict, common: dict, path: Path) -> None:
    """Resuming on data featurized differently from the interrupted run is an error."""
    now = {
        "task": common["task"], "targets": common["targets"],
        "radii": [float(r) for r in common["radii"]],
        "conformer_settings": common["conformer_settings"].to_dict(),
        "featurization": common["featurization"],
    }  # fmt: skip
    before = {k: payload.get(k) for k in now}
    before["featurization"] = {**LEGACY_FEATURIZATION, **(payload.get("featurization") or {})}
    before["conformer_settings"] = {**now["conformer_settings"],
                                    **(payload.get("conformer_settings") or {})}  # fmt: skip
    differ = [k for k in now if before[k] != now[k]]
    if differ:
        detail = "; ".join(f"{k}: {before[k]} then, {now[k]} now" for k in differ)
        raise ValueError(f"cannot resume {path}: the data is featurized differently ({detail})")


def _selection_metric(task: str, val_labels: np.ndarray) -> tuple[str, bool]:
    """The validation metric for early stopping, and whether larger is better.

    ROC-AUC needs both classes in at least one validation task; without them every epoch
    would score NaN and the untrained epoch 0 would be kept, so the validation log-loss is
    used instead, with a warning.
    """
    name, maximize = SELECTION_METRIC[task]
    if task == "classification" and scorable_tasks(task, val_labels) == 0:
        warnings.warn(
            "no validation task holds both classes, so ROC-AUC is undefined; early stopping "
            "uses the validation log-loss (val_loss) instead. A larger or stratified validation "
            "set (e.g. --split scaffold_balanced) restores ROC-AUC selection.",
            stacklevel=4,  # the caller of train(), which builds the run that calls this
        )
        return "loss", False
    return name, maximize


def _selection_score(task: str, metric: str, pred: np.ndarray, labels: np.ndarray) -> float:
    if metric == "loss":
        return masked_log_loss(pred, labels)
    return compute_metrics(task, pred, labels)[metric]


def _better(score: float, best: float | None, maximize: bool) -> bool:
    """Is ``score`` an improvement? The first epoch always is; a NaN score never beats a number."""
    if best is None or (not np.isfinite(best) and np.isfinite(score)):
        return True
    if not np.isfinite(score):
        return False
    return score > best if maximize else score < best


def _grid_spec(radii: np.ndarray) -> dict:
    radii = np.asarray(radii, dtype=np.float64)
    step = float(np.round(radii[1] - radii[0], 10)) if len(radii) > 1 else 1.0
    spec = {"start": float(radii[0]), "stop": float(radii[-1]), "step": step}
    rebuilt = np.round(np.linspace(spec["start"], spec["stop"], len(radii)), 10)
    if not np.allclose(rebuilt, radii):
        raise ValueError("the model needs an evenly spaced filtration grid")
    return spec


def _labels(data_list: list) -> np.ndarray:
    if not data_list:
        return np.zeros((0, 0))
    return np.stack([d[keys.Y][0].numpy() for d in data_list]).astype(np.float64)
