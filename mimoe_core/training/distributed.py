"""Data-parallel training with ``torch.distributed``: who this process is, and what ranks share.

A run launched by ``torchrun`` (``torchrun --standalone --nproc-per-node N -m mimoe_core
train ...``) finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment;
:func:`init_from_env` joins the process group (gloo on the CPU, NCCL on GPUs) with a timeout
on every collective, so a rank that dies ends the others with an error instead of a hang.
One process without those variables is world size 1, and nothing here changes its behaviour.

What ranks share, and how (the trainer uses these):

- :func:`rank_slice`: the part of a global batch that this rank computes. Every rank draws the
  same per-epoch order from the run seed, cuts it into global batches of ``batch_size`` and
  deals each to the ranks by size, so the global batch is what ``--batch-size`` says.
- :func:`gather_rows`: an evaluation over a whole set, each rank computing one contiguous
  block of it, gathered in order on every rank (so all ranks agree on early stopping).
- :func:`main_first`: rank 0 featurizes first, then one rank per other node, then the rest
  (which read the cache), after :func:`check_one_host_per_folder` has checked that no two
  nodes share that cache folder; :func:`rows_kept_by_every_rank` then finds the molecules that every
  rank kept, and :func:`check_ranks_agree` that every rank trains on the same molecules and
  split.
- :func:`per_rank`: a few integers from every rank (e.g. the epoch each one resumes at), so
  that the ranks can check that they agree.
- :func:`all_sum`: epoch sums (losses, expert usage) over ranks, for the history.
- :func:`checkpoint_in_step`: no rank starts the next epoch before rank 0 has written the
  checkpoint of this one, and a SIGTERM waits for that write.
- :func:`weights_in_sync`: whether every rank holds the same weights (checked at the end of
  a run and recorded in ``metrics.json``).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import hashlib
import inspect
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from mimoe_core.models.gate import load_balancing_loss

__all__ = [
    "DistributedContext",
    "RankFailure",
    "all_sum",
    "check_batch_size",
    "check_one_host_per_folder",
    "check_ranks_agree",
    "checkpoint_in_step",
    "current",
    "data_parallel",
    "deal_by_size",
    "exit_failed_rank",
    "fingerprint",
    "forget_unused_gradients",
    "gather_rows",
    "global_balancing_loss",
    "init_from_env",
    "launched_by_torchrun",
    "main_first",
    "peer_failures_reported",
    "per_rank",
    "rank_slice",
    "rows_kept_by_every_rank",
    "shutdown",
    "signal_when_parent_dies",
    "weights_in_sync",
]

#: Seconds a collective waits for the other ranks before it fails (``--dist-timeout``).
DEFAULT_TIMEOUT = 600.0
#: Seconds the other ranks wait for rank 0's featurization (it may take hours).
FEATURIZE_TIMEOUT = 7 * 24 * 3600.0
#: Whether DDP broadcasts rank 0's buffers before every forward pass (its default). The
#: models' buffers are constants (radial-basis offsets, the target scaling, the gate's
#: radius grid), equal on every rank from the start and checked by :func:`weights_in_sync`;
#: a broadcast per step only adds a collective at which the ranks wait for each other
#: (``benchmarks/bench_ddp_step.py`` measures it).
FORWARD_SYNC_BUFFERS = False

_T = TypeVar("_T")
#: How a stopped run goes on: before its first epoch ends (during featurization, say) there
#: is no last.pt yet, and --resume starts from scratch.
_RESUME_HINT = (
    "If an epoch had finished, the run folder's last.pt holds the last one: add --resume to "
    "continue (without last.pt, --resume starts from scratch)"
)
#: prctl(2) option: the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


class RankFailure(RuntimeError):
    """Another rank of the run stopped (killed, failed, or timed out in a collective).

    A rank that catches one should end with :func:`exit_failed_rank`, not by returning:
    tearing its process group down can hang.
    """


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run.

    Attributes:
        rank: global rank, 0..world_size-1.
        world_size: number of processes (1 without ``torchrun``).
        local_rank: rank on this node (picks the GPU).
        backend: ``"gloo"``, ``"nccl"``, or ``None`` for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether the environment names more than one process (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> DistributedContext:
    """The context of the process group this process has joined (world size 1 if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=str(dist.get_backend()),
    )


def init_from_env(device: str = "auto", timeout: float = DEFAULT_TIMEOUT) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Args:
        device: the run's device setting: ``"cpu"`` gives gloo; ``"cuda"``, or ``"auto"``
            on a machine with CUDA, gives NCCL with one GPU per local rank.
        timeout: seconds any collective waits for the other ranks before it fails.

    Returns:
        The context; world size 1 (and no process group) when not launched by ``torchrun``.

    Raises:
        ValueError: a CUDA run with more local ranks than GPUs, or a timeout that is not
            positive.
    """
    if timeout <= 0:
        raise ValueError(f"the collective timeout must be positive, got {timeout} s")
    if not launched_by_torchrun():
        return DistributedContext()
    if dist.is_initialized():
        return current()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"local rank {local_rank} has no GPU: this node has "
                f"{torch.cuda.device_count()}; use --nproc-per-node of at most that"
            )
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(seconds=timeout),
        )
    except RuntimeError as err:
        if not _is_collective_failure(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RankFailure(
            f"rank {os.environ.get('RANK', '?')}: the ranks did not all join the run within "
            f"--dist-timeout ({timeout:g} s; {first[:300]}). Ranks start at different speeds "
            "on a loaded machine: raise --dist-timeout, or check that every rank was launched"
        ) from err
    context = current()
    signal.signal(signal.SIGTERM, _stop_on_sigterm(context))
    signal_when_parent_dies(signal.SIGTERM)
    return context


def signal_when_parent_dies(signum: int) -> None:
    """Ask Linux to send this process ``signum`` when its parent dies.

    A rank asks for SIGTERM: torchrun stops its ranks when it is stopped itself, but a
    launcher killed with SIGKILL (or by the OOM killer) cannot, and a rank waiting for rank
    0's featurization would wait for days. A loader worker asks for SIGKILL when its rank
    goes (:mod:`mimoe_core.training.batches`). Elsewhere than Linux this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this C library
        return


def _stop_on_sigterm(context: DistributedContext) -> Callable[..., None]:
    """A SIGTERM handler: ``torchrun`` stops the other ranks this way when one fails.

    It acts once and ignores later SIGTERMs: the rank is already stopping, and a launcher's
    death can deliver the parent-death signal twice (seen 20 ms apart, as Linux hands the
    rank from one dying launcher thread to the next), which would otherwise raise a second
    error in the middle of reporting the first.
    """

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise RankFailure(
            f"rank {context.rank} of {context.world_size} was stopped (SIGTERM), which "
            "torchrun does when another rank fails: see that rank's error above. "
            f"{_RESUME_HINT}"
        )

    return stop


@contextlib.contextmanager
def checkpoint_in_step(context: DistributedContext) -> Iterator[None]:
    """Around the end-of-epoch checkpoint: every rank leaves only once it is on disk.

    Without the barrier a rank could start (and fail in) the next epoch while rank 0 still
    writes, and torchrun's SIGTERM would then cut that write short: ``last.pt`` would hold
    one epoch fewer than the error message promises. A SIGTERM that arrives during the write
    (a scheduler preempting the job) takes effect once the write is done; torchrun waits
    30 s before it kills.
    """
    caught: list[int] = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if caught:  # now as if it had come after the write, to whatever handled it before
        signal.raise_signal(signal.SIGTERM)
    if context.distributed:
        dist.barrier()


@contextlib.contextmanager
def peer_failures_reported(context: DistributedContext) -> Iterator[None]:
    """A failed collective (a rank died, or stalled past the timeout) as :class:`RankFailure`.

    gloo reports a dead peer as a plain ``RuntimeError`` ("Connection closed by peer") and a
    stalled one as a timeout; NCCL raises ``torch.distributed.DistError``.
    """
    if not context.distributed:
        yield
        return
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, RankFailure) or not _is_collective_failure(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RankFailure(
            f"rank {context.rank} of {context.world_size}: a collective operation failed, so "
            "another rank stopped or did not answer within --dist-timeout "
            f"({first[:300]}). {_RESUME_HINT}"
        ) from err


def _is_collective_failure(err: RuntimeError) -> bool:
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    marks = ("gloo", "nccl", "connection closed", "timed out", "timeout", "pair closure")
    return any(mark in text for mark in marks)


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_failed_rank(code: int) -> None:
    """End this process now if it is a rank of a process group (after a :class:`RankFailure`).

    Python's own exit frees the DDP model, whose process group's destructor joins gloo's
    worker threads while holding the GIL; a worker that is still releasing the collective
    that failed needs the GIL too, and the rank hangs for good (seen now and then after the
    launcher was killed). A failed rank has nothing left to save (:func:`checkpoint_in_step`
    has put ``last.pt`` on disk), so it flushes its output and leaves without that teardown.
    Outside a process group this returns and the caller exits as usual.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream must not keep us here
            stream.flush()
    os._exit(code)


def main_first(work: Callable[[bool], _T], context: DistributedContext) -> _T:
    """Run ``work`` on rank 0, then on one rank per other node, then on the other ranks.

    ``work(fills_cache)`` fills a cache that the later ranks read: ``fills_cache`` is true on
    rank 0 and on the first rank of each other node, false on the ranks that only read (so
    that they, say, do not retry the timeouts their node's first rank has just retried).
    Each node has a cache of its own (an SQLite file in WAL mode wants its readers and
    writers on one host), which its local rank 0 fills once before the node's other ranks
    read it, instead of every rank featurizing the same molecules at once. On one node this
    is rank 0, then the others.

    The waits use their own group with a long timeout (:data:`FEATURIZE_TIMEOUT`, not
    ``--dist-timeout``): featurizing a large dataset takes longer than any collective
    should. A rank that fails or dies meanwhile ends the wait at once (gloo sees the closed
    connection); wrap the call in :func:`peer_failures_reported` to report that as a
    :class:`RankFailure`.
    """
    if not context.distributed:
        return work(True)
    waiting = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=FEATURIZE_TIMEOUT))
    node_leader = context.local_rank == 0 and not context.is_main
    phases = (context.is_main, node_leader, not (context.is_main or node_leader))
    result = None
    for my_turn, fills_cache in zip(phases, (True, True, False), strict=True):
        if my_turn:
            result = work(fills_cache)
        # After the last phase too: every rank leaves together, since the next collective
        # (DDP's first broadcast) has only --dist-timeout, and reading the cache on a loaded
        # machine can take longer than that.
        dist.barrier(group=waiting)
    dist.destroy_process_group(waiting)
    return result


def check_one_host_per_folder(folder: Path, context: DistributedContext, what: str) -> None:
    """Raise on every rank if nodes on different hosts see the same ``folder``.

    The first rank of each node writes a probe file named by a token of this run and its
    rank, holding its host name; after a barrier each opens the other nodes' probes by name
    (on NFS, opening a file revalidates it, where a directory listing can be stale). A node
    that finds a probe of another host shares the folder with it (a network filesystem).
    Nodes of one host (simulated on one machine) may share a folder. One node does nothing.

    Raises:
        ValueError: naming ``what`` (the folder's role), the folder and the hosts.
    """
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", context.world_size))
    if not context.distributed or local_world == context.world_size:
        return
    token = [secrets.token_hex(8) if context.is_main else None]
    dist.broadcast_object_list(token, src=0)
    writes_probe = context.local_rank == 0
    leaders = [int(r) for r in per_rank([writes_probe], context)[:, 0].nonzero()[0]]
    probes = {rank: folder / f".host-probe-{token[0]}-{rank}" for rank in leaders}
    probe = probes.get(context.rank)
    if probe is not None:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_text(socket.gethostname())
    dist.barrier()
    hosts: set[str] = set()
    if probe is not None:
        for path in probes.values():
            with contextlib.suppress(FileNotFoundError):  # another node's own folder
                hosts.add(path.read_text())
    shared = per_rank([len(hosts) > 1], context)[:, 0]
    dist.barrier()  # every node has read every probe
    if probe is not None:
        probe.unlink(missing_ok=True)
    if shared.any():
        others = f" ({', '.join(sorted(hosts))})" if len(hosts) > 1 else ""
        raise ValueError(
            f"the {what} {folder} is shared by nodes on different hosts{others}: its SQLite "
            "database needs its readers and writers on one host. Give each node a folder on "
            "its local disk (MIMOE_CACHE_DIR or --cache-dir)"
        )


def check_batch_size(
    batch_size: int, context: DistributedContext, name: str = "batch size"
) -> None:
    """A global batch is split across the ranks, so it needs at least one molecule per rank.

    Raises:
        ValueError: ``batch_size`` is below ``context.world_size``.
    """
    if batch_size < context.world_size:
        raise ValueError(
            f"{name} {batch_size} is split across {context.world_size} ranks: it must be at "
            "least the number of ranks"
        )


def rank_slice(
    chosen: Sequence[_T], context: DistributedContext, sizes: Sequence[int] | None = None
) -> list[_T]:
    """This rank's molecules of a global batch.

    Without ``sizes``: every ``world_size``-th, from ``rank``. With ``sizes`` (the atom count
    of each molecule), the ranks get equal numbers of molecules (to within one) and nearly
    equal numbers of atoms (:func:`deal_by_size`). Every step waits for the slowest rank, so
    balanced work is time saved. The result depends only on ``chosen`` and ``sizes``, so
    every rank computes the same partition.
    """
    world, rank = context.world_size, context.rank
    if sizes is None or world == 1:
        return list(chosen[rank::world])
    if len(sizes) != len(chosen):
        raise ValueError(f"{len(sizes)} sizes for {len(chosen)} molecules")
    mine = np.flatnonzero(deal_by_size(sizes, world) == rank)
    return [chosen[i] for i in mine]


def deal_by_size(sizes: Sequence[int], world_size: int) -> np.ndarray:
    """The rank that gets each item: equal counts (to within one), nearly equal size totals.

    First the items are dealt largest first, ``world_size`` at a time: in each round the
    largest item of the round goes to the rank with the smallest total so far, the next to
    the next smallest, and so on (ties to the lower rank). Every rank gets one item per round,
    so the counts differ by at most one. Then, up to ``2 * world_size`` times, the heaviest
    rank swaps one item with the lightest: the pair whose swap leaves the two totals closest
    (a swap never raises the largest total, and the counts stay). On the atom counts of
    Tox21's global batches of 64 the largest rank total ends 0.03 % above the mean on 2 ranks
    and 0.32 % on 8, against 1.29 % and 15.75 % for the snake order (0, 1, 1, 0, ...) dealt
    before (``python benchmarks/bench_ddp_step.py`` prints the table; tested against the
    snake order).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    owner = np.empty(len(sizes), dtype=np.int64)
    totals = np.zeros(world_size, dtype=np.int64)
    largest_first = np.argsort(-sizes, kind="stable")
    for start in range(0, len(sizes), world_size):
        items = largest_first[start : start + world_size]
        ranks = np.argsort(totals, kind="stable")[: len(items)]
        owner[items] = ranks
        totals[ranks] += sizes[items]
    for _ in range(2 * world_size):
        heavy, light = int(np.argmax(totals)), int(np.argmin(totals))
        gap = totals[heavy] - totals[light]
        from_heavy, from_light = np.flatnonzero(owner == heavy), np.flatnonzero(owner == light)
        moved = sizes[from_heavy][:, None] - sizes[from_light][None, :]
        # the two totals' difference after each swap; only 0 < moved < gap brings them closer
        after = np.where((moved > 0) & (moved < gap), np.abs(gap - 2 * moved), gap)
        best = int(np.argmin(after)) if after.size else 0
        if not after.size or after.flat[best] >= gap:
            break
        i, j = divmod(best, len(from_light))
        owner[from_heavy[i]], owner[from_light[j]] = light, heavy
        totals[heavy] -= moved[i, j]
        totals[light] += moved[i, j]
    return owner


def _blocks(n: int, world_size: int) -> list[slice]:
    """Each rank's contiguous block of ``n`` items (sizes differ by at most one)."""
    bounds = np.linspace(0, n, world_size + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def gather_rows(
    items: Sequence[Any],
    evaluate: Callable[[Sequence[Any]], dict[str, np.ndarray]],
    context: DistributedContext,
) -> dict[str, np.ndarray]:
    """``evaluate(items)``, each rank computing a block, on every rank in the input's order.

    Args:
        items: the whole set (every rank passes the same).
        evaluate: maps items to a dict of arrays with one row per item.
        context: the run's context.
    """
    if not context.distributed:
        return evaluate(items)
    blocks = _blocks(len(items), context.world_size)
    mine = evaluate(items[blocks[context.rank]])
    found: list[dict[str, np.ndarray] | None] = [None] * context.world_size
    dist.all_gather_object(found, mine)
    # A rank with an empty block (fewer items than ranks) may lack optional keys: leave it out.
    found = [f for f, b in zip(found, blocks, strict=True) if b.stop > b.start] or found[:1]
    return {k: np.concatenate([f[k] for f in found]) for k in found[0]}


def all_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The element-wise sum of ``values`` over ranks (float64, on the CPU)."""
    values = values.detach().double().cpu()
    if not context.distributed:
        return values
    device = _collective_device(context)
    summed = values.to(device)
    dist.all_reduce(summed)
    return summed.cpu()


def global_balancing_loss(
    probs: torch.Tensor, selected: torch.Tensor, molecules: int, context: DistributedContext
) -> torch.Tensor:
    """This rank's part of the load-balancing loss of the whole global batch.

    The experts' Top-k counts are summed over the ranks (one all-reduce of K numbers, on the
    collective device, not differentiated), and the rank's summed probabilities are divided by
    ``molecules / world_size``: DDP's mean of the ranks' gradients is then the gradient of
    :func:`~mimoe_core.models.gate.load_balancing_loss` over the global batch, as one process
    takes it, and the mean of the ranks' values is its value.

    Args:
        probs: [b, K] full gate softmax of this rank's molecules.
        selected: [b, K] bool Top-k mask of this rank's molecules.
        molecules: the global batch's molecule count (every rank passes the same).
        context: the process group; one process gets the batch's own loss.
    """
    if not context.distributed:
        return load_balancing_loss(probs, selected)
    # counts, exact in float32 up to 2**24
    load = selected.detach().sum(0).float().to(_collective_device(context))
    dist.all_reduce(load)
    return load_balancing_loss(
        probs, selected, load.to(probs.device), molecules / context.world_size
    )


def _collective_device(context: DistributedContext) -> torch.device:
    """Where a tensor must be for a collective: this rank's GPU under NCCL, else the CPU."""
    if context.backend == "nccl":
        return torch.device("cuda", context.local_rank)
    return torch.device("cpu")


def per_rank(values: Sequence[int], context: DistributedContext) -> np.ndarray:
    """Every rank's ``values`` (a few integers, as many on each rank), row r from rank r."""
    mine = torch.tensor([list(values)], dtype=torch.int64)
    if not context.distributed:
        return mine.numpy()
    device = _collective_device(context)
    mine = mine.to(device)
    found = [torch.empty_like(mine) for _ in range(context.world_size)]
    dist.all_gather(found, mine)
    return torch.cat(found).cpu().numpy()


def fingerprint(*arrays: np.ndarray) -> int:
    """A 63-bit digest of arrays' shapes, types and contents, to compare across ranks."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


def check_ranks_agree(values: dict[str, int], context: DistributedContext, hint: str) -> None:
    """Raise unless every rank passes the same ``values`` (names -> integers, e.g. digests).

    Raises:
        ValueError: naming each value that differs and the ranks that differ from rank 0,
            followed by ``hint`` (what the user can do about it).
    """
    if not context.distributed:
        return
    found = per_rank(list(values.values()), context)
    differing = [
        f"{name} (rank(s) {', '.join(map(str, np.flatnonzero(found[:, k] != found[0, k])))} "
        "differ from rank 0)"
        for k, name in enumerate(values)
        if (found[:, k] != found[0, k]).any()
    ]
    if differing:
        raise ValueError(f"the ranks hold different {'; '.join(differing)}: {hint}")


def rows_kept_by_every_rank(
    rows: np.ndarray, context: DistributedContext
) -> tuple[np.ndarray, dict[int, list[int]], int]:
    """The rows in ``rows`` that every rank kept, and for the others the ranks that lack them.

    Each rank featurizes the table itself (from its node's cache), and a conformer that times
    out on one rank can be made on another: the ranks must train on the same molecules, so
    each keeps only those that all of them have. The ranks compare digests of their rows
    first, and exchange the rows themselves only if the digests differ.

    Returns:
        (``rows`` without the rows some rank lacks, in their order; ``{row: [ranks that lack
        it]}`` for this rank's rows left out; how many rows some rank kept and another did
        not, the same on every rank).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not context.distributed:
        return rows, {}, 0
    found = per_rank([len(rows), fingerprint(rows)], context)
    if (found == found[0]).all():
        return rows, {}, 0
    everyone: list[np.ndarray | None] = [None] * context.world_size
    dist.all_gather_object(everyone, rows)
    common = functools.reduce(np.intersect1d, everyone)
    anywhere = functools.reduce(np.union1d, everyone)
    held = [set(theirs.tolist()) for theirs in everyone]
    in_common = np.isin(rows, common)
    lacking = {
        row: [r for r, theirs in enumerate(held) if row not in theirs]
        for row in rows[~in_common].tolist()
    }
    return rows[in_common], lacking, len(anywhere) - len(common)


def weights_in_sync(module: torch.nn.Module, context: DistributedContext) -> bool:
    """Whether every rank holds exactly the same parameters and buffers as rank 0.

    Compares a per-tensor checksum (sum and sum of squares, float64) across ranks: equal
    weights give equal checksums bit for bit, since every rank applies the same reduced
    gradients in the same order.
    """
    if not context.distributed:
        return True
    tensors = [t for t in module.state_dict().values() if torch.is_tensor(t)]
    mine = torch.tensor(
        [v for t in tensors for v in (t.double().sum().item(), t.double().square().sum().item())],
        dtype=torch.float64,
    )
    found: list[torch.Tensor | None] = [None] * context.world_size
    dist.all_gather_object(found, mine)
    return all(torch.equal(f, found[0]) for f in found)


def data_parallel(model: torch.nn.Module, context: DistributedContext, device: torch.device):
    """The forward pass of a training step: DDP around ``model.forward_batch`` if distributed.

    Sparse routing leaves some experts without molecules on a rank in some steps. Instead of
    DDP's unused-parameter search (``find_unused_parameters=True``, which walks the autograd
    graph every step and measured 27 % slower on 2 gloo ranks), the forward adds a zero
    multiple of every parameter to the prediction, so each parameter gets a gradient on each
    rank and the buckets reduce as in a dense model. After the reduction,
    :func:`forget_unused_gradients` turns the exactly-zero gradients of parameters that no rank
    used back into ``None``, as one process would have left them (so the optimizer skips
    them, and its moments and step counts match the one-process run).

    Buffers are broadcast from rank 0 once, when DDP wraps the model, not before every
    forward pass (:data:`FORWARD_SYNC_BUFFERS`).
    """
    if not context.distributed:
        return model.forward_batch
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        _BatchForward(model),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=False,
        **_buffer_sync_option(DistributedDataParallel, FORWARD_SYNC_BUFFERS),
    )


def _buffer_sync_option(ddp_class: type, every_forward: bool) -> dict[str, bool]:
    """DDP's argument for broadcasting buffers before every forward, in this torch's name.

    ``forward_sync_buffers`` where torch has it (buffers are then still synced once, at
    construction), the older ``broadcast_buffers`` otherwise (a GPU machine's torch may
    predate the new name).
    """
    if "forward_sync_buffers" in inspect.signature(ddp_class.__init__).parameters:
        return {"forward_sync_buffers": every_forward}
    return {"broadcast_buffers": every_forward}


def forget_unused_gradients(model: torch.nn.Module) -> None:
    """Set to ``None`` the gradients that are exactly zero: parameters no rank used this step.

    The zero multiples :func:`data_parallel` adds give unused parameters a zero gradient on
    every rank, so after DDP's averaging an all-zero gradient means no rank used the parameter
    (a used parameter's gradient is exactly zero everywhere with probability zero).
    """
    with_grads = [p for p in model.parameters() if p.grad is not None]
    if not with_grads:
        return
    peaks = torch.stack([p.grad.detach().abs().amax() for p in with_grads])
    for parameter, unused in zip(with_grads, (peaks == 0).tolist(), strict=True):
        if unused:
            parameter.grad = None


class _BatchForward(torch.nn.Module):
    """``model.forward_batch`` as a module's ``forward``, which is what DDP wraps.

    The output's prediction carries ``0 * sum`` of one entry of every parameter, so every
    parameter is in the backward graph on every rank (see :func:`data_parallel`).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        out = self.model.forward_batch(batch)
        firsts = [p.view(-1)[0].to(out.y.dtype) for p in self.model.parameters() if p.numel()]
        return out._replace(y=out.y + 0.0 * torch.stack(firsts).sum())
