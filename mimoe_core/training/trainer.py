"""Training loop: masked multi-task loss, load balancing, early stopping, checkpoints, resume.

Reproducibility: the shuffling order and the random state of epoch e (dropout, noisy gating)
come from ``seed`` and e alone, so a run resumed from ``last.pt`` after an interruption
continues exactly as the uninterrupted run would have (on the CPU, deterministic mode).

:func:`train` is the entry point; it builds a :class:`TrainingRun` (data, model, optimizer,
schedule and a :class:`TrainState`), resumes it if asked, and calls :meth:`TrainingRun.fit`.
Batches are made by :func:`mimoe_core.forward.prepare_batch`, as in evaluation and prediction,
in line or ahead by loader worker processes (:mod:`mimoe_core.training.batches`).

Under ``torchrun`` (:mod:`mimoe_core.training.distributed`) the same loop runs on every rank
with DistributedDataParallel: each global batch of ``batch_size`` molecules is split across the
ranks, validation is computed in blocks and gathered, and only rank 0 writes files and shows
progress. Sparse routing leaves some experts without molecules on a rank in a step; their
gradients are reduced as zeros on that rank (:func:`distributed.data_parallel`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mimoe_core import keys, run_folder
from mimoe_core.calibration import (
    Calibration,
    estimate_std,
    finite_json,
    uncertainty_metrics,
)
from mimoe_core.conformer_views import (
    conformers_per_molecule,
    drawn_conformers,
)
from mimoe_core.data.splits import Split
from mimoe_core.featurization import FeaturizedDataset
from mimoe_core.forward import resolve_device, run_model
from mimoe_core.models import create_model, load_config
from mimoe_core.models.compiled import compile_experts, release_compiled
from mimoe_core.scaling import ScaledMIMoE, TargetScaler
from mimoe_core.shards import ShardedDataset
from mimoe_core.trained import (
    TrainedModel,
    read_payload,
    save_checkpoint,
)
from mimoe_core.training import distributed
from mimoe_core.training.batches import TrainingBatches
from mimoe_core.training.distributed import DistributedContext
from mimoe_core.training.divergence import TrainingDiverged, gradient_norm
from mimoe_core.training.ema import WeightAverage
from mimoe_core.training.losses import masked_gaussian_nll, masked_loss
from mimoe_core.training.metrics import (
    compute_metrics,
)
from mimoe_core.training.parts import (
    check_split,
    labels_of,
    molecule_sizes,
    shuffled_order,
    subset,
)
from mimoe_core.training.records import check_same_inputs, write_run_files
from mimoe_core.training.schedule import make_scheduler, step_scheduler, warmup_lr
from mimoe_core.training.selection import is_better, selection_metric, selection_score
from mimoe_core.training.settings import TrainResult, TrainSettings, TrainState
from mimoe_core.training.transfer import (
    check_compatible,
    copy_weights,
    freeze,
    load_source,
)


@contextlib.contextmanager
def _deterministic(enabled: bool):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def train(
    dataset: FeaturizedDataset | ShardedDataset,
    split: Split,
    model_config: str | Path | Mapping[str, Any] | None = None,
    settings: TrainSettings | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    context: DistributedContext | None = None,
) -> TrainResult:
    """Train MI-MoE on a featurized dataset and evaluate the best epoch on val and test.

    Loss per step: masked task loss (MSE on standardized targets, or BCE with logits) plus
    ``balance_weight`` times the load-balancing loss. The best epoch by the validation
    metric (RMSE, or ROC-AUC) is kept.

    Args:
        dataset: from :func:`mimoe_core.featurization.featurize`, or a
            :class:`~mimoe_core.shards.ShardedDataset` read lazily from disk (each epoch then
            visits the shards in a random order, the molecules of each in a random order);
            its labels, conformers and descriptor trajectories are used as they are.
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
        context: this process's rank and world size; default
            :func:`mimoe_core.training.distributed.current` (world size 1 unless the process
            group was joined, e.g. by ``mimoe train`` under ``torchrun``).

    Returns:
        :class:`TrainResult`. On ranks other than 0 of a distributed run: the trained model,
        its history, and ``metrics`` holding only ``rank`` and ``world_size`` (rank 0
        evaluates and writes the run).
    """
    run = TrainingRun(dataset, split, model_config, settings, out_dir, context)
    if resume:
        run.resume()
    return run.fit()


class TrainingRun:
    """One training run, the object :func:`train` drives (TorchMD-Net's ``LNNP`` shape).

    Construction validates the inputs, fits the target scaling on the training split, builds
    the model (seeded by ``settings.seed``), optimizer and LR schedule; :meth:`resume`
    continues from ``out_dir/last.pt``; :meth:`fit` trains, keeps the best epoch, evaluates
    it and writes the run folder.

    Args:
        dataset, split, model_config, settings, out_dir, context: as for :func:`train`.

    Attributes:
        model: the :class:`~mimoe_core.scaling.ScaledMIMoE` being trained.
        state: the :class:`TrainState`.
        best_state: the state dict of the best epoch so far.
    """

    def __init__(
        self,
        dataset: FeaturizedDataset | ShardedDataset,
        split: Split,
        model_config: str | Path | Mapping[str, Any] | None = None,
        settings: TrainSettings | None = None,
        out_dir: str | Path | None = None,
        context: DistributedContext | None = None,
    ) -> None:
        self.settings = settings = settings or TrainSettings()
        self.context = context = context or distributed.current()
        distributed.check_batch_size(settings.batch_size, context)
        self.dataset, self.split = dataset, split
        self.task, self.targets = dataset.table.task, list(dataset.table.target_names)
        if not self.targets:
            raise ValueError("the dataset has no target columns to train on")
        check_split(dataset, split)
        if len(split.test) == 0:
            # stacklevel: warn at the caller of train(), which builds this run.
            warnings.warn(
                f"the split has no test molecules ({split.method} split of "
                f"{len(split.train) + len(split.val)} molecules: a scaffold split of few "
                "molecules can leave a part empty); metrics.json will have no test scores",
                stacklevel=3,
            )
        self.device = resolve_device(settings.device)
        if context.backend == "nccl":
            self.device = torch.device("cuda", context.local_rank)
        source = load_source(settings.init_from) if settings.init_from else None
        if source is not None and model_config is None:
            model_config = source.model.config
        config = load_config(model_config)
        if settings.uncertainty == "mve":
            if self.task != "regression":
                raise ValueError("mve (a variance head) is for regression targets")
            config["variance_head"] = True
        config["out_channels"] = len(self.targets)
        config["radii"] = _grid_spec(dataset.radii)
        if source is not None:
            check_compatible(
                config, source, dataset.radii, dataset.feature_settings(), settings.init_from
            )
        if config["atom_attributes"] and not dataset.feature_settings().get("atom_attributes"):
            raise ValueError(
                "the model config reads atom attributes, and the dataset was featurized "
                "without them: featurize with atom_attributes=True"
            )
        self.train_list, self.val_list = subset(dataset, split.train), subset(dataset, split.val)
        train_labels, self.val_labels = labels_of(self.train_list), labels_of(self.val_list)
        if context.distributed:
            self._check_ranks_train_alike(train_labels)
            # to deal each global batch before any molecule is read
            self.train_atoms, self.train_labels = molecule_sizes(self.train_list)
        #: M conformers per molecule: each epoch shows every molecule one, drawn by seed.
        self.num_conformers = conformers_per_molecule(self.train_list)
        if settings.uncertainty == "conformers" and self.num_conformers < 2:
            raise ValueError(
                "uncertainty 'conformers' is the spread of the prediction over a conformer "
                "ensemble: featurize with keep_conformers (--conformers) M of at least 2"
            )
        self.scaler = TargetScaler.fit(train_labels, self.task)
        self.metric_name, self.maximize = selection_metric(self.task, self.val_labels)

        torch.manual_seed(settings.seed)
        self.model = ScaledMIMoE(create_model(config), self.scaler)
        #: Weights not taken from ``init_from`` (the scaling, and a head of another shape).
        self.not_copied: list[str] = []
        if source is not None:
            self.not_copied = copy_weights(self.model, source)
            freeze(self.model, settings.freeze)
        self.model.to(self.device)
        if settings.compile:  # released when fit() returns the model
            compile_experts(self.model)
        self._step_forward: Callable[..., Any] | None = None  # see step_forward
        #: The training batches, made at the first epoch (their workers start then).
        self._batches: TrainingBatches | None = None
        #: The weights' moving average (None unless ``settings.ema_decay`` > 0).
        self.ema = WeightAverage(self.model, settings.ema_decay) if settings.ema_decay else None
        opt_cls = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
        groups = parameter_groups(self.model, settings)
        self.optimizer = opt_cls(
            groups,
            lr=settings.lr,
            weight_decay=settings.weight_decay,
            **fused_option(groups, settings.fused_optimizer),
        )
        self.scheduler = make_scheduler(self.optimizer, settings, minimize=not self.maximize)
        self.state = TrainState()
        #: The uncertainty calibration, fitted by :meth:`calibrate` after training.
        self.calibration: Calibration | None = None
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.out = Path(out_dir) if out_dir is not None else None
        #: Only rank 0 writes the run folder; every rank reads it to resume.
        self.writes = self.out is not None and context.is_main
        self.use_amp = settings.amp and self.device.type == "cuda"
        #: Molecules and seconds of the training passes of this session (throughput).
        self.timing = {"molecules": 0, "seconds": 0.0}

    @property
    def step_forward(self) -> Callable[..., Any]:
        """What a training step calls: ``model.forward_batch``, through DDP if distributed.

        Built at the first step, not before: wrapping the model in DDP is a collective, and a
        run that stops before training (ranks that found different checkpoints) must not hold
        a DDP reducer, whose process group cannot be torn down once a peer has gone (the rank
        would hang on exit).
        """
        if self._step_forward is None:
            self._step_forward = distributed.data_parallel(self.model, self.context, self.device)
        return self._step_forward

    @property
    def common(self) -> dict[str, Any]:
        """What every checkpoint of the run records besides the weights."""
        return {
            "task": self.task,
            "targets": self.targets,
            "radii": list(self.dataset.radii),
            "conformer_settings": self.dataset.settings,
            "featurization": self.dataset.feature_settings(),
        }

    def trained_model(self, calibrated: bool = True) -> TrainedModel:
        """The model as it is now, with what using it needs (its calibration too, if asked)."""
        common = self.common
        extra = {}
        if calibrated and self.calibration is not None:
            extra = {"calibration": self.calibration.to_dict()}
        return TrainedModel(
            self.model,
            self.task,
            self.targets,
            common["radii"],
            common["conformer_settings"],
            common["featurization"],
            extra,
        )

    def calibrate(self) -> None:
        """Fit the uncertainty calibration of the best model on the validation set.

        With ``settings.uncertainty == "experts"``: the estimate is the experts'
        disagreement, and ``model.pt`` is written again with the calibration in it.
        """
        settings = self.settings
        if settings.uncertainty == "none":
            return
        if not self.val_list:
            raise ValueError(
                "calibration is fitted on the validation set and this split has none; "
                "use a split with a validation set, or no uncertainty"
            )
        result = self.trained_model().explain(self.val_list, settings.batch_size, self.device)
        self.calibration = Calibration.fit(
            self.task,
            settings.uncertainty,
            settings.calibration,
            result.prediction,
            estimate_std(result, settings.uncertainty),
            self.val_labels,
        )
        if self.writes:
            save_checkpoint(
                self.out / run_folder.MODEL,
                self.model,
                **self.common,
                epoch=self.state.best_epoch,
                calibration=self.calibration.to_dict(),
            )

    def resume(self) -> bool:
        """Continue from ``out_dir/last.pt`` if it exists; whether it did.

        Under ``torchrun`` every rank reads the checkpoint, and all must find the same one
        (a collective: every rank calls this).

        Raises:
            ValueError: ``last.pt`` was trained on data featurized differently, or the ranks
                found different checkpoints (no shared run folder across nodes).
        """
        path = self.out / run_folder.LAST if self.out is not None else None
        resumed = path is not None and path.is_file()
        if resumed:
            payload = read_payload(path)
            check_same_inputs(payload, self.common, path)
            self.model.load_state_dict(payload["state_dict"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(payload["scheduler"])
            self.best_state = payload["best_state_dict"]
            if self.ema is not None and payload.get("ema"):
                self.ema.load_state_dict(payload["ema"])
            self.state = TrainState.from_dict(payload["train_state"])
        self._check_ranks_resume_alike(self.state.epoch if resumed else -1)
        return resumed

    def _check_ranks_train_alike(self, train_labels: np.ndarray) -> None:
        """Raise unless every rank holds the same molecules, split, labels and features.

        Each rank featurizes and splits for itself; ranks that differ would score one
        rank's predictions against another's labels (compared by digest). ``train_labels``:
        :func:`labels_of` the training part (``self.val_labels`` the validation part's).
        """
        dataset, split = self.dataset, self.split
        features = json.dumps(
            [dataset.settings.to_dict(), dataset.feature_settings(), dataset.radii.tolist()],
            sort_keys=True,
        )
        with distributed.peer_failures_reported(self.context):
            distributed.check_ranks_agree(
                {
                    "molecules": distributed.fingerprint(dataset.rows),
                    "splits": distributed.fingerprint(split.train, split.val, split.test),
                    "labels": distributed.fingerprint(train_labels, self.val_labels),
                    "featurization settings": distributed.fingerprint(
                        np.frombuffer(features.encode(), dtype=np.uint8)
                    ),
                },
                self.context,
                "every rank must train on the same molecules, labels and split, featurized the "
                "same way (mimoe train makes the ranks agree on the molecules; from Python, "
                "featurize and split the same way on every rank)",
            )

    def _check_ranks_resume_alike(self, epochs_done: int) -> None:
        """Raise unless every rank resumes after the same epoch (or none resumes).

        A rank on a node that does not see rank 0's run folder would otherwise start from
        scratch beside ranks that continue, and the run would fail later at a collective
        timeout without saying why.
        """
        if not self.context.distributed:
            return
        with distributed.peer_failures_reported(self.context):
            found = distributed.per_rank([epochs_done], self.context)[:, 0]
        if (found == found[0]).all():
            return
        seen = ", ".join(
            f"rank {rank}: " + (f"after epoch {done}" if done >= 0 else f"no {run_folder.LAST}")
            for rank, done in enumerate(found.tolist())
        )
        raise ValueError(
            f"--resume: the ranks found different checkpoints in {self.out} ({seen}). Every "
            "rank reads the run folder to resume, so on several nodes --out must be a folder "
            "that all nodes share (or hold the same last.pt on each node)"
        )

    def fit(self) -> TrainResult:
        """Train up to ``settings.epochs`` (early stopping), then evaluate and write the run."""
        settings, state = self.settings, self.state
        bar = self._epoch_bar()
        try:
            with (
                _deterministic(settings.deterministic and self.device.type == "cpu"),
                distributed.peer_failures_reported(self.context),
            ):
                for epoch in range(state.epoch, settings.epochs):
                    if epoch > 0 and state.bad_epochs >= settings.patience:
                        break  # resumed from a run that had already stopped early
                    stop = self.run_epoch(epoch)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(self._progress_numbers(), refresh=True)
                    if stop:
                        break
        finally:
            if self._batches is not None:  # its loader workers, if any
                self._batches.close()
        if bar is not None:
            bar.close()
        if settings.compile:
            # The returned model is a plain one; the evaluation below is one pass.
            release_compiled(self.model)
        with distributed.peer_failures_reported(self.context):
            in_sync = distributed.weights_in_sync(self.model, self.context)
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        history = pd.DataFrame(state.history)
        if not self.context.is_main:  # rank 0 evaluates and writes the run
            metrics = {"rank": self.context.rank, "world_size": self.context.world_size}
            return TrainResult(self.model, metrics, history, self.scaler)
        self.calibrate()
        if self.writes and self.settings.uncertainty == "none":
            # Again, from the weights the metrics describe: a run stopped between writing
            # model.pt and last.pt reruns that epoch on --resume, which need not repeat it.
            save_checkpoint(
                self.out / run_folder.MODEL, self.model, **self.common, epoch=self.state.best_epoch
            )
        metrics = self.final_metrics()
        if self.context.distributed:
            metrics["distributed"]["ranks_in_sync"] = in_sync
        if self.writes:
            self.write_run(history, metrics)
        return TrainResult(model=self.model, metrics=metrics, history=history, scaler=self.scaler)

    def _epoch_bar(self) -> Any:
        """One tqdm bar over the epochs (None without progress, and on ranks other than 0)."""
        if not self.settings.progress or not self.context.is_main:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.settings.epochs, initial=self.state.epoch, desc="training", unit="epoch"
        )

    def _progress_numbers(self) -> dict[str, str]:
        """The last epoch's validation score and the best so far, for the progress bar."""
        name = f"val_{self.metric_name}"
        last = self.state.history[-1][name] if self.state.history else float("nan")
        best = self.state.best
        shown = "none yet" if best is None else f"{best:.4g} (epoch {self.state.best_epoch})"
        return {name: f"{last:.4g}", "best": shown}

    def run_epoch(self, epoch: int) -> bool:
        """Train one epoch, validate, checkpoint; whether early stopping ends the run."""
        settings, state = self.settings, self.state
        start = time.perf_counter()
        row = self.train_epoch(epoch)
        averaged = self.ema.applied(self.model) if self.ema else contextlib.nullcontext()

        def evaluate(part):
            return run_model(self.model, part, self.task, settings.batch_size, self.device)

        with averaged:  # validate, keep and checkpoint the averaged weights, if any
            val = distributed.gather_rows(self.val_list, evaluate, self.context)
            score = selection_score(self.task, self.metric_name, val["prediction"], self.val_labels)
            if is_better(score, state.best, self.maximize):
                state.best, state.best_epoch, state.bad_epochs = float(score), epoch, 0
                self.best_state = copy.deepcopy(self.model.state_dict())
                if self.writes:
                    save_checkpoint(
                        self.out / run_folder.MODEL, self.model, **self.common, epoch=epoch
                    )
            else:
                state.bad_epochs += 1
            row.update(learned_cutoff_columns(self.model))
        if epoch >= settings.warmup_epochs:
            step_scheduler(self.scheduler, score, self.maximize)
        row.update(
            epoch=epoch,
            **{f"val_{self.metric_name}": score},
            lr=self.optimizer.param_groups[0]["lr"],
            seconds=round(time.perf_counter() - start, 3),
        )
        state.history.append(row)
        state.epoch = epoch + 1
        with distributed.checkpoint_in_step(self.context):
            if self.writes:
                self.save_last()
        return state.bad_epochs >= settings.patience

    def save_last(self) -> None:
        """Write ``last.pt``: weights, optimizer, schedule, best weights and state."""
        save_checkpoint(
            self.out / run_folder.LAST,
            self.model,
            **self.common,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else {},
            best_state_dict=self.best_state,
            ema=self.ema.state_dict() if self.ema is not None else {},
            train_state=self.state.to_dict(),
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the shuffled training set; returns the epoch's averages.

        Every rank draws the same order; a rank computes its share of each global batch
        (:func:`~mimoe_core.training.distributed.rank_slice`). A last global batch with
        fewer molecules than ranks is left out of that epoch (the order changes each epoch).
        A step whose gradients are not finite is skipped and counted (``skipped_steps``);
        an epoch of nothing else raises :class:`~mimoe_core.training.divergence.TrainingDiverged`.
        """
        model, settings, context = self.model, self.settings, self.context
        train_list = self.train_list
        started = time.perf_counter()
        model.train()
        # dropout, noisy gating; rank 0 (and a single process) keeps the seed of a 1-process run
        torch.manual_seed(settings.seed * 100_003 + epoch + 7_919 * context.rank)
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
        order = shuffled_order(train_list, gen)
        shown = drawn_conformers(len(train_list), self.num_conformers, settings.seed, epoch)
        dtype = next(model.parameters()).dtype
        # loss, task_loss, aux_loss, molecules; summed on the device, read once per epoch
        # (reading them every step would make the host wait for the GPU at every step)
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        usage = torch.zeros(model.num_experts, dtype=torch.float64, device=self.device)
        starts = range(0, len(order), settings.batch_size)
        # A last global batch with fewer molecules than ranks is left out.
        short = 0 < len(order) % settings.batch_size < context.world_size
        kept = starts[: len(starts) - short]

        def global_batches() -> Iterator[list[int]]:  # one at a time: an epoch is never listed
            for start in kept:
                yield order[start : start + settings.batch_size]

        # Dealt from the sizes alone: a rank reads (from shards, decodes) only its own.
        mine = (
            (distributed.rank_slice(p, context, self.train_atoms[p]) for p in global_batches())
            if context.distributed
            else global_batches()
        )
        if self._batches is None:
            self._batches = TrainingBatches(train_list, self.device, dtype, settings.loader_workers)
        steps = skipped = 0
        # closing: a step that raises must not leave the loader's workers held by this frame
        with contextlib.closing(self._batches.epoch(mine, shown)) as batches:
            for step, (positions, batch) in enumerate(zip(global_batches(), batches, strict=True)):
                lr = warmup_lr(settings, epoch, step, len(starts))
                if lr is not None:
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr * group.get("lr_scale", 1.0)
                steps += 1
                done = self._train_step(batch, positions, epoch)
                if done is None:
                    skipped += 1
                    continue
                sums += done[0]
                usage += done[1]
        sums, usage = (distributed.all_sum(t.cpu(), context) for t in (sums, usage))
        total = max(float(sums[3]), 1.0)
        self.timing["molecules"] += int(sums[3])
        self.timing["seconds"] += time.perf_counter() - started
        names = ("loss", "task_loss", "aux_loss")
        if steps and skipped == steps:
            raise TrainingDiverged(epoch, steps)
        if skipped and context.is_main:
            warnings.warn(
                f"epoch {epoch}: {skipped} of {steps} training steps skipped, their gradients "
                "were not finite (history.csv: skipped_steps)",
                stacklevel=2,
            )
        row = {k: float(v) / total for k, v in zip(names, sums[:3], strict=True)}
        row.update({f"usage_{e + 1}": float(u) / total for e, u in enumerate(usage)})
        row["skipped_steps"] = skipped
        return row

    def _train_step(
        self, batch: Any, positions: list[int], epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """One optimizer step on this process's part of the global batch ``positions``.

        Returns the step's ``(loss, task_loss, aux_loss, molecules)`` weighted for the
        history's epoch means, and each expert's Top-k count, both on the device; or None
        when the gradients were not finite and the step was skipped.
        """
        model, settings, context = self.model, self.settings, self.context
        # The history's epoch means weigh each batch by its molecules; a rank's loss is
        # its share of the global batch's mean, so it counts for its share of molecules.
        global_size = len(positions)
        weight = global_size / context.world_size
        labels = None  # one process: the mean over the batch's present labels
        if context.distributed:
            # The mean over the global batch's labels, as one process takes it: DDP
            # averages the ranks' gradients, so each rank divides its sum by the global
            # count over the number of ranks (ranks can hold different numbers of labels:
            # missing labels, slices one molecule apart).
            labels = float(self.train_labels[positions].sum()) / context.world_size
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
            out = self.step_forward(batch)
        # Train mode: the model's outputs are standardized, so are the regression targets.
        target = (
            model.output_transform.transform(batch[keys.Y].to(out.y.dtype))
            if self.task == "regression"
            else batch[keys.Y]
        )
        if out.log_var is not None and epoch >= settings.mve_warmup:
            task_loss = masked_gaussian_nll(
                out.y.float(), out.log_var.float(), target.float(), batch[keys.Y_MASK], labels
            )
        else:  # MSE first: the mean settles before the variance is fitted to it
            task_loss = masked_loss(
                out.y.float(), target.float(), batch[keys.Y_MASK], self.task, labels
            )
        aux_loss = out.aux_loss
        if context.distributed and out.probs is not None:
            # Balanced over the global batch, as one process balances it, not per rank.
            aux_loss = distributed.global_balancing_loss(
                out.probs, out.selected, global_size, context
            )
        loss = task_loss + model.balance_weight * aux_loss.float()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if context.distributed:
            distributed.forget_unused_gradients(model)
        # All-reduced gradients: every rank sees the same norm, so all skip together.
        if not torch.isfinite(gradient_norm(model, settings.clip_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(model)
        one = torch.ones((), dtype=loss.dtype, device=loss.device)
        terms = torch.stack([loss, task_loss, aux_loss.float(), one]).detach() * weight
        return terms, out.selected.double().sum(0)

    def final_metrics(self) -> dict[str, Any]:
        """The ``metrics.json`` content: the run's facts and the model's val/test scores."""
        model, split, settings = self.model, self.split, self.settings
        result: dict[str, Any] = {
            "task": self.task,
            "targets": self.targets,
            "unit": self.dataset.table.unit,
            "split": getattr(split, "method", None),
            **({"split_source": split.source} if getattr(split, "source", None) else {}),
            "seed": settings.seed,
            "n_train": len(split.train),
            "n_val": len(split.val),
            "n_test": len(split.test),
            "n_skipped": len(self.dataset.skipped),
            "conformers_per_molecule": self.num_conformers,
            "selection_metric": f"val_{self.metric_name}",
            "best_epoch": self.state.best_epoch,
            "epochs_run": self.state.epoch,
            # The experts' own cutoffs: one for `one_expert` and `plain`, not the config's K.
            "model": {
                **{k: model.config[k] for k in ("backbone", "variant", "top_k")},
                "cutoffs": [float(c) for c in model.cutoffs],
                "gate": model.config["gate"]["name"] if model.gate is not None else None,
                "atom_attributes": bool(model.config["atom_attributes"]),
                **(
                    {
                        "learned_cutoffs": [float(c) for c in model.cutoffs],
                        "initial_cutoffs": [float(c) for c in model.config["cutoffs"]],
                    }
                    if model.learnable_cutoffs is not None
                    else {}
                ),
                **(
                    {
                        "shared_trunk_layers": model.trunk.num_layers,
                        "shared_trunk_cutoff": model.trunk.cutoff,
                    }
                    if model.trunk is not None
                    else {}
                ),
            },
            "settings": asdict(settings),
            "world_size": self.context.world_size,
            # Measured, so the one entry that differs between two runs of the same settings.
            "timing": {
                "train_molecules_per_second": _rate(self.timing),
                "train_seconds": round(self.timing["seconds"], 3),
            },
        }
        if self.context.distributed:
            result["distributed"] = {"backend": self.context.backend}
        for name in ("val", "test"):
            part = subset(self.dataset, getattr(split, name))
            if not part:
                result[name] = {}
                continue
            out = run_model(model, part, self.task, settings.batch_size, self.device)
            result[name] = compute_metrics(self.task, out["prediction"], labels_of(part))
        if self.calibration is not None:
            result["uncertainty"] = self.uncertainty_metrics()
        return result

    def uncertainty_metrics(self) -> dict[str, Any]:
        """The calibrated uncertainty's metrics on val and test (``metrics.json``)."""
        settings, bare = self.settings, self.trained_model(calibrated=False)
        found: dict[str, Any] = {
            "estimator": settings.uncertainty,
            "calibration": settings.calibration,
            "coverage": settings.coverage,
        }
        for name in ("val", "test"):
            part = subset(self.dataset, getattr(self.split, name))
            if not part:
                found[name] = {}
                continue
            raw = bare.explain(part, settings.batch_size, self.device)
            std = estimate_std(raw, settings.uncertainty)
            r = self.calibration.apply_to(raw, std, settings.coverage)
            found[name] = finite_json(
                uncertainty_metrics(
                    self.task,
                    r.prediction,
                    r.std,
                    labels_of(part),
                    r.lower,
                    r.upper,
                    uncalibrated=raw.prediction,
                )
            )
        return found

    def write_run(self, history: pd.DataFrame, metrics: dict) -> None:
        """The plain files of the run folder, with the test set explained."""
        dataset, split = self.dataset, self.split
        test = subset(dataset, split.test)
        explained = self.trained_model().explain(
            test,
            self.settings.batch_size,
            self.device,
            with_labels=True,
            coverage=self.settings.coverage,
        )
        write_run_files(self.out, dataset, split, metrics, history, explained)


def fused_option(groups: list[dict[str, Any]], fused: bool) -> dict[str, bool]:
    """``{"fused": True}`` for Adam(W) where asked and torch has the kernel, else ``{}``.

    Torch has it where every parameter of ``groups`` is a floating tensor on the CPU or a
    CUDA device.

    Example:
        >>> fused_option([{"params": [torch.zeros(3, requires_grad=True)]}], fused=True)
        {'fused': True}
    """
    params = [p for group in groups for p in group["params"]]
    supported = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return {"fused": True} if fused and supported and params else {}


def parameter_groups(model, settings: TrainSettings) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the model's trainable weights, and learnable cutoffs.

    The cutoffs get ``lr * cutoff_lr_scale`` (the group's ``lr_scale``, which the warmup
    reads); with scale 0 they are held fixed and left out.

    Raises:
        ValueError: ``cutoff_lr_scale`` other than 1 for a model without learnable cutoffs.
    """
    learnable = model.learnable_cutoffs
    scale = settings.cutoff_lr_scale
    if learnable is None:
        if scale != 1.0:
            raise ValueError(
                f"cutoff_lr_scale={scale} scales the learning rate of learnable cutoffs, and "
                "this model has fixed cutoffs (set learnable_cutoffs / --learnable-cutoffs)"
            )
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    cutoffs = list(learnable.parameters())
    if scale == 0.0:
        for param in cutoffs:
            param.requires_grad_(False)
    own = {id(p) for p in cutoffs}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if scale > 0:
        trainable = [p for p in cutoffs if p.requires_grad]
        groups.append({"params": trainable, "lr": settings.lr * scale, "lr_scale": scale})
    return groups


def learned_cutoff_columns(model) -> dict[str, float]:
    """``cutoff_1..K`` of a model with learnable cutoffs (its history columns); else {}."""
    if model.learnable_cutoffs is None:
        return {}
    return {f"cutoff_{e + 1}": c for e, c in enumerate(model.cutoffs)}


def _rate(timing: dict) -> float | None:
    """Training molecules per second of this session's epochs (None before any)."""
    if timing["seconds"] <= 0:
        return None
    return round(timing["molecules"] / timing["seconds"], 2)


def _grid_spec(radii: np.ndarray) -> dict:
    radii = np.asarray(radii, dtype=np.float64)
    step = float(np.round(radii[1] - radii[0], 10)) if len(radii) > 1 else 1.0
    spec = {"start": float(radii[0]), "stop": float(radii[-1]), "step": step}
    rebuilt = np.round(np.linspace(spec["start"], spec["stop"], len(radii)), 10)
    if not np.allclose(rebuilt, radii):
        raise ValueError("the model needs an evenly spaced filtration grid")
    return spec
