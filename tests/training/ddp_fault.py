"""``mimoe`` under torchrun with one rank made to fail: a fault-injection entry point for tests.

``MIMOE_FAULT=kill:RANK:EPOCH`` kills that rank (SIGKILL) as it starts that epoch, and rank 0
takes 3 s longer over each checkpoint (so a rank that does not wait for the write dies during it);
``MIMOE_FAULT=stall:RANK:EPOCH`` makes it sleep for a minute there instead, so the other ranks
wait on a collective until ``--dist-timeout``; ``MIMOE_FAULT=late:RANK:SECONDS`` makes that rank
start so many seconds late, before it joins the process group; ``MIMOE_FAULT=nan:RANK:STEP``
makes that rank's training loss NaN at its training step STEP (0-based, over the run);
``MIMOE_FAULT=timeout:RANK:SMILES`` makes that rank's conformer of SMILES time out (with
``--jobs 1``, where conformers are made in the rank's own process). Run as
``torchrun ... ddp_fault.py train ...``.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable

from mimoe_core import featurization
from mimoe_core.cli import main
from mimoe_core.training import trainer


def _inject() -> None:
    kind, rank, epoch = os.environ["MIMOE_FAULT"].split(":")
    if kind == "late":
        if int(os.environ["RANK"]) == int(rank):
            time.sleep(float(epoch))
        return
    if kind == "timeout":
        if int(os.environ["RANK"]) == int(rank):
            featurization._embed_job = timing_out(epoch, featurization._embed_job)
        return
    if kind == "nan":
        if int(os.environ["RANK"]) == int(rank):
            trainer.masked_loss = nan_losses_at({int(epoch)}, trainer.masked_loss)
        return
    original = trainer.TrainingRun.train_epoch

    def train_epoch(self, at: int):
        if self.context.rank == int(rank) and at == int(epoch):
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        return original(self, at)

    trainer.TrainingRun.train_epoch = train_epoch
    if kind == "kill":
        save_last = trainer.TrainingRun.save_last

        def slow_save_last(self):
            time.sleep(3)
            return save_last(self)

        trainer.TrainingRun.save_last = slow_save_last


def nan_losses_at(steps: set[int], masked_loss: Callable) -> Callable:
    """``masked_loss`` whose loss is NaN in these training steps (0-based, over the run);
    also used by ``test_divergence.py``."""
    calls = iter(range(10**9))

    def nan_at_steps(*args):
        loss = masked_loss(*args)
        return loss * math.nan if next(calls) in steps else loss

    return nan_at_steps


def timing_out(smiles: str, embed_job: Callable) -> Callable:
    """``featurization._embed_job`` whose conformer of ``smiles`` times out."""
    canonical = featurization.canonical_smiles(smiles)  # what the jobs carry

    def embed_or_time_out(job):
        index, given, *_ = job
        if given == canonical:
            return index, featurization._TimedOut(f"conformer embedding timed out for {smiles}")
        return embed_job(job)

    return embed_or_time_out


if __name__ == "__main__":
    _inject()
    sys.exit(main(sys.argv[1:]))
