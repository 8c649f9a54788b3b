"""Timing several variants side by side: the order in which they take turns, and
training epochs timed that way."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import torch


def turn_order(count: int, turn: int) -> list[int]:
    """The order in which ``count`` variants run on ``turn``: a rotation, so that over
    ``count`` turns each variant goes first (and last) once, and none is always the one
    that runs right after a warm cache or a change of machine load."""
    return [(turn + i) % count for i in range(count)]


class EpochTimes(NamedTuple):
    """What :func:`epochs_side_by_side` measured, per training run (the ``trainers`` keys).

    Attributes:
        median: median seconds of the timed epochs.
        usage: share of molecules each expert received, averaged over the timed epochs.
        warmup: seconds of the first, untimed epoch (allocations, caches, compilation).
        losses: training loss of every epoch, the warm-up first.
    """

    median: dict[str, float]
    usage: dict[str, list[float]]
    warmup: dict[str, float]
    losses: dict[str, list[float]]


def epochs_side_by_side(trainers: dict, repeats: int) -> EpochTimes:
    """Seconds of a training epoch per training run, the runs alternating, and the share of
    molecules each expert received over the timed epochs: how long an epoch takes depends on
    which experts (which cutoffs, how many edges) the gate picks.

    Each run trains one warm-up epoch (allocations, caches), then ``repeats`` timed ones,
    the runs taking turns epoch by epoch (who goes first rotates) so that all see the same
    machine load.
    """
    times: dict[str, list[float]] = {key: [] for key in trainers}
    usage: dict[str, list[list[float]]] = {key: [] for key in trainers}
    warmup: dict[str, float] = {}
    losses: dict[str, list[float]] = {key: [] for key in trainers}
    keys = list(trainers)
    for epoch in range(repeats + 1):
        for index in turn_order(len(keys), epoch):
            key, trainer = keys[index], trainers[keys[index]]
            start = time.perf_counter()
            row = trainer.train_epoch(epoch)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            seconds = time.perf_counter() - start
            losses[key].append(row.get("loss", float("nan")))
            if epoch == 0:
                warmup[key] = seconds
                continue
            times[key].append(seconds)
            usage[key].append([row[f"usage_{e + 1}"] for e in range(trainer.model.num_experts)])
    median = {key: float(np.median(values)) for key, values in times.items()}
    shares = {key: np.mean(rows, axis=0).tolist() for key, rows in usage.items()}
    return EpochTimes(median, shares, warmup, losses)
