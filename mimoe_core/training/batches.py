"""The training batches of an epoch, assembled in line or ahead by loader worker processes.

Molecules in memory are packed once into flat tensors
(:class:`~mimoe_core.packed_molecules.PackedMolecules`) and each step's batch is gathered
from them, and batches from shards are gathered from the decoded shards the same way; any
other sequence of molecules is assembled one by one with PyG's ``Batch.from_data_list``.
With ``TrainSettings.loader_workers`` > 0, the worker processes of a torch ``DataLoader``
assemble the next batches while the current step runs, and the trainer only moves each to
the device (from pinned memory on CUDA, without blocking). The batches are the same
molecules in the same order either way, so the run's numbers do not change (tested), and
the loader draws nothing from the global random state that dropout and gate noise use.

Workers send their batches through named shared-memory files (torch's ``file_system``
sharing strategy, set in the workers only): the default strategy passes every tensor's file
descriptor over its own socket connection: receiving a batch of 32 took 18 ms that way
against 5 ms (profiled by hand with cProfile on this 2-core machine).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from mimoe_core.forward import batch_source
from mimoe_core.training.distributed import signal_when_parent_dies

__all__ = ["TrainingBatches"]

#: Batches each worker keeps assembled ahead of the step (torch's default).
PREFETCH_PER_WORKER = 2


class TrainingBatches:
    """The batch of every training step, epoch after epoch, on the run's device.

    Molecules in memory (a list) are packed into flat tensors once
    (:class:`~mimoe_core.packed_molecules.PackedMolecules`), and each batch is gathered from
    them with a few vectorized operations: 2.5 to 8.3 times faster than PyG's
    ``Batch.from_data_list`` at batches of 32 to 1024 (``benchmarks/results/loader_cpu.md``),
    and the same batch. Molecules read lazily from shards are gathered from the decoded
    shards the same way (:meth:`~mimoe_core.shards.ShardSequence.batch`).

    With ``workers`` > 0 the worker processes start at the first epoch and stay for the
    run (forked on Linux, so they share the molecules in memory; packed ones without copying
    them, as reading them writes nothing). A first version forked them at every epoch, and
    with molecules assembled one by one a worker took 280 and 730 MiB more than training in
    line at batches of 32 and 256 (``benchmarks/results/loader_cpu_fork_per_epoch.md``),
    likely the copy-on-write of the pages the trainer writes after each fork; forked once,
    90 and 120 MiB. The molecules are the ones given at construction. :meth:`close`
    stops the workers and drops the packed copy (so does garbage collection).

    Args:
        molecules: the training molecules (in memory, or read lazily from shards).
        device, dtype: where the batches go, and the coordinates' dtype (the model's).
        workers: 0 assembles each batch in this process when its step asks for it; N > 0
            has N worker processes assemble whole batches ahead.
    """

    def __init__(
        self, molecules: Sequence[Data], device: torch.device, dtype: torch.dtype, workers: int = 0
    ) -> None:
        self.molecules, self.device, self.dtype, self.workers = molecules, device, dtype, workers
        self._keys = _Keys()
        self._step_batches: _StepBatches | None = None  # made (packed) at the first epoch
        self._loader: DataLoader | None = None

    def _new_loader(self, step_batches: _StepBatches) -> DataLoader:
        return DataLoader(
            step_batches,
            batch_size=None,  # an item is a whole step's batch
            sampler=self._keys,
            collate_fn=_whole_batch,
            num_workers=self.workers,
            prefetch_factor=PREFETCH_PER_WORKER,
            persistent_workers=True,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_init_worker,
            # Its own generator: the workers' seeds would otherwise be drawn from the global
            # random state, and dropout and gate noise would differ from the run in line.
            generator=torch.Generator(),
            multiprocessing_context=_start_method(),
        )

    def epoch(self, steps: Iterable[Sequence[int]], conformers: Any) -> Iterator[Batch]:
        """The batches of one epoch, in order.

        Args:
            steps: for each step, the positions in ``molecules`` that this process computes
                (read one step at a time: an epoch of millions of molecules is never listed).
            conformers: [len(molecules)] integers, the conformer each molecule shows.
        """
        if self._step_batches is None:
            self._step_batches = _StepBatches(self.molecules, self.dtype)
        self._keys.steps, self._keys.conformers = steps, np.asarray(conformers, dtype=np.int64)
        if not self.workers:
            for key in self._keys:
                yield self._step_batches[key].to(self.device)
            return
        if self._loader is None:
            self._loader = self._new_loader(self._step_batches)
        non_blocking = self.device.type == "cuda"
        for batch in self._loader:
            yield batch.to(self.device, non_blocking=non_blocking)

    def close(self) -> None:
        """Stop the worker processes and drop the packed molecules.

        A later :meth:`epoch` makes them again.
        """
        # The loader's iterator holds the workers and stops them when it is freed.
        self._loader = None
        self._step_batches = None


class _Keys:
    """The sampler: each step's key, its positions and their conformers, in this epoch.

    Made as they are asked for: the loader asks a few steps ahead of the training. Keys are
    plain lists: the loader sends them to its workers, and a tensor would travel as a file
    descriptor over a socket connection of its own (several times slower per step).
    """

    def __init__(self) -> None:
        self.steps: Iterable[Sequence[int]] = ()
        self.conformers = np.zeros(0, dtype=np.int64)

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        for positions in self.steps:
            index = np.asarray(positions, dtype=np.int64)
            yield index.tolist(), self.conformers[index].tolist()


class _StepBatches(Dataset):
    """The batch of one step, for the key ``(positions, conformers)``, in host memory.

    Made by :func:`~mimoe_core.forward.batch_source`: molecules in a list are packed;
    packed ones and shard views gather their own batches; any other sequence, or a list that
    cannot be packed (a warning says why), is assembled one molecule at a time.
    """

    def __init__(self, molecules: Sequence[Data], dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.molecules, why_not = batch_source(molecules)
        if why_not is not None:
            warnings.warn(
                f"the training molecules cannot be packed ({why_not}); their batches are "
                "assembled one molecule at a time",
                stacklevel=2,
            )

    def __getitem__(self, key: tuple[list[int], list[int]]) -> Batch:
        positions, conformers = key
        return self.molecules.batch(positions, conformers, self.dtype)


def _whole_batch(batch: Batch) -> Batch:
    """The loader's collation: a worker's item is already the step's whole batch."""
    return batch


def _start_method() -> multiprocessing.context.BaseContext | None:
    """Fork on Linux, the platform's default elsewhere.

    Forked workers share the molecules instead of unpickling a copy each (Python 3.14 makes
    forkserver the default on Linux).
    """
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return None


def _init_worker(worker_id: int) -> None:
    """A worker leaves its rank's process group and signal handling, and dies with it.

    torchrun stops a failed run's ranks with SIGTERM to each rank's process group: a worker
    in that group would die first, and its rank would end in the loader's "worker killed"
    error instead of its own one-line stop. Out of the group, with SIGTERM at its default,
    the worker is stopped by its rank (or killed by Linux when its rank is gone). Batches
    travel through named shared-memory files (see the module docstring).
    """
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal_when_parent_dies(signal.SIGKILL)
    torch.multiprocessing.set_sharing_strategy("file_system")
