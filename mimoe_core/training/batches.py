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
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from mimoe_core.conformer_views import conformer_view
from mimoe_core.forward import assemble_batch
from mimoe_core.packed_molecules import PackedMolecules
from mimoe_core.shards import ShardSequence
from mimoe_core.training.distributed import signal_when_parent_dies

__all__ = ["TrainingBatches"]

#: Batches each worker keeps assembled ahead of the step (torch's default).
PREFETCH_PER_WORKER = 2


class TrainingBatches:
    """The batch of every training step, epoch after epoch, on the run's device.

    Molecules in memory (a list) are packed into flat tensors once
    (:class:`~mimoe_core.packed_molecules.PackedMolecules`), and each batch is gathered from
    them with a few vectorized operations: 3.2 to 11.7 times faster than PyG's
    ``Batch.from_data_list`` at batches of 32 to 1024 (``benchmarks/results/loader_cpu.md``),
    and the same batch. Molecules read lazily from shards are gathered from the decoded
    shards the same way (:meth:`~mimoe_core.shards.ShardSequence.batch`).

    With ``workers`` > 0 the worker processes start at the first epoch and stay for the
    run (forked on Linux, so they share the molecules in memory; packed ones without copying
    them, as reading them writes nothing). A first version forked
    them at every epoch, and a worker took 280 and 730 MiB more than training in line at
    batches of 32 and 256 (``benchmarks/results/loader_cpu_fork_per_epoch.md``; 103 and 49
    MiB forked once, ``loader_cpu.md``), likely the copy-on-write of the pages the trainer
    writes after each fork. The molecules are the ones given at construction. :meth:`close`
    stops the workers (so does garbage collection).

    Args:
        molecules: the training molecules (in memory, or read lazily from shards).
        device, dtype: where the batches go, and the coordinates' dtype (the model's).
        workers: 0 assembles each batch in this process when its step asks for it; N > 0
            has N worker processes assemble whole batches ahead.
    """

    def __init__(
        self, molecules: Sequence[Data], device: torch.device, dtype: torch.dtype, workers: int = 0
    ) -> None:
        self.device, self.workers = device, workers
        self._step_batches = _StepBatches(molecules, dtype)
        self._keys = _Keys()
        self._loader = self._new_loader() if workers else None

    def _new_loader(self) -> DataLoader:
        return DataLoader(
            self._step_batches,
            batch_size=None,  # an item is a whole step's batch
            sampler=self._keys,
            collate_fn=_as_made,
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

    def epoch(self, steps: Iterable[Sequence[int]], conformers: torch.Tensor) -> Iterator[Batch]:
        """The batches of one epoch, in order.

        Args:
            steps: for each step, the positions in ``molecules`` that this process computes
                (read one step at a time: an epoch of millions of molecules is never listed).
            conformers: for each molecule, the conformer it shows this epoch.
        """
        self._keys.steps, self._keys.conformers = steps, torch.as_tensor(conformers)
        if self._loader is None:
            for key in self._keys:
                yield self._step_batches[key].to(self.device)
            return
        non_blocking = self.device.type == "cuda"
        for batch in self._loader:
            yield batch.to(self.device, non_blocking=non_blocking)

    def close(self) -> None:
        """Stop the worker processes (a later :meth:`epoch` starts new ones)."""
        if self._loader is not None:
            # The loader's iterator holds the workers and stops them when it is freed.
            self._loader = self._new_loader()


class _Keys:
    """The sampler: each step's key, its positions and their conformers, in this epoch.

    Made as they are asked for: the loader asks a few steps ahead of the training.
    """

    def __init__(self) -> None:
        self.steps: Iterable[Sequence[int]] = ()
        self.conformers = torch.zeros(0, dtype=torch.long)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for positions in self.steps:
            index = torch.as_tensor(positions, dtype=torch.long)
            yield index, self.conformers[index]


class _StepBatches(Dataset):
    """The batch of one step, for the key ``(positions, conformers)``, in host memory.

    Molecules in a list are packed; packed ones and shard views
    (:class:`~mimoe_core.shards.ShardSequence`) gather their batches themselves (their
    ``batch`` method); any other sequence is assembled one molecule at a time.
    """

    def __init__(self, molecules: Sequence[Data], dtype: torch.dtype) -> None:
        self.dtype = dtype
        in_memory = isinstance(molecules, (list, tuple)) and len(molecules) > 0
        self.molecules = PackedMolecules(molecules) if in_memory else molecules

    def __getitem__(self, key: tuple[torch.Tensor, torch.Tensor]) -> Batch:
        positions, conformers = key
        if isinstance(self.molecules, (PackedMolecules, ShardSequence)):
            return self.molecules.batch(positions, conformers, self.dtype)
        chosen = [
            conformer_view(self.molecules[i], c)
            for i, c in zip(positions.tolist(), conformers.tolist(), strict=True)
        ]
        return assemble_batch(chosen, self.dtype)


def _as_made(batch: Batch) -> Batch:
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
