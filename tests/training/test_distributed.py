"""Data-parallel training: 2 real gloo processes under torchrun, against the 1-process run.

The torchrun runs take a few seconds each (two interpreters importing torch); the runs are
shared by module-scoped fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch

from mimoe_core.cli import main
from mimoe_core.training import distributed
from mimoe_core.training.distributed import DistributedContext

FAULT_ENTRY = Path(__file__).with_name("ddp_fault.py")
ARGS = ["train", "--dataset", "freesolv", "--limit", "60", "--epochs", "4", "--hidden", "16",
        "--batch-size", "16", "--device", "cpu", "--split", "random", "--quiet"]  # fmt: skip


def _torchrun(args: list[str], cache: Path, entry: list[str] | None = None, **env: str):
    """``torchrun --standalone --nproc-per-node 2`` on ``mimoe`` (or on ``entry``)."""
    entry = entry or ["-m", "mimoe_core"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", *entry, *args]  # fmt: skip
    environment = {**os.environ, "MIMOE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp_cache")


def _one_and_two(args: list[str], cache: Path, root: Path) -> dict[str, Any]:
    """``args`` trained in 1 process (``root/one``) and on 2 gloo ranks (``root/two``)."""
    one, two = root / "one", root / "two"
    done = _torchrun([*args, "--out", str(two)], cache)
    assert done.returncode == 0, done.stderr[-3000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIMOE_CACHE_DIR", str(cache))
        assert main([*args, "--out", str(one)]) == 0
    return {"one": one, "two": two, "stdout_two": done.stdout}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_cache) -> dict[str, Any]:
    """The same training on 1 process and on 2 gloo processes (same global batch)."""
    return _one_and_two(ARGS, shared_cache, tmp_path_factory.mktemp("ddp_runs"))


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_two_ranks_record_world_size_and_hold_the_same_weights(runs):
    two = _metrics(runs["two"])
    assert two["world_size"] == 2 and two["distributed"]["backend"] == "gloo"
    assert two["distributed"]["ranks_in_sync"] is True
    assert two["settings"]["batch_size"] == 16  # the global batch
    assert _metrics(runs["one"])["world_size"] == 1 and "distributed" not in _metrics(runs["one"])
    # only rank 0 prints its summary
    assert runs["stdout_two"].count("best epoch") == 1


def test_learnable_cutoffs_stay_in_sync_across_ranks(shared_cache, tmp_path):
    """Their own parameter group (scaled learning rate) is all-reduced like every weight."""
    out = tmp_path / "learnable"
    options = ["--learnable-cutoffs", "--cutoff-lr-scale", "20", "--epochs", "2"]
    done = _torchrun([*ARGS, *options, "--out", str(out)], shared_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = _metrics(out)
    assert metrics["distributed"]["ranks_in_sync"] is True
    learned = metrics["model"]["learned_cutoffs"]
    assert learned != metrics["model"]["initial_cutoffs"] and np.all(np.diff(learned) > 0)


def test_a_shared_trunk_stays_in_sync_across_ranks(shared_cache, tmp_path):
    """The trunk runs on every molecule of a rank, the experts on the routed ones."""
    out = tmp_path / "trunk"
    options = ["--shared-trunk", "--epochs", "2"]
    done = _torchrun([*ARGS, *options, "--out", str(out)], shared_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = _metrics(out)
    assert metrics["distributed"]["ranks_in_sync"] is True
    assert metrics["model"]["shared_trunk_layers"] == 1


@pytest.mark.slow
def test_compiled_experts_train_in_sync_across_ranks(shared_cache, tmp_path, runs):
    """``--compile`` under DDP: each rank compiles its experts; the weights stay identical
    and the run lands where the eager 2-rank run does (the same numbers to rounding)."""
    out = tmp_path / "compiled"
    done = _torchrun([*ARGS, "--compile", "--out", str(out)], shared_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics, eager = _metrics(out), _metrics(runs["two"])
    assert metrics["distributed"]["ranks_in_sync"] is True and metrics["settings"]["compile"]
    assert metrics["test"]["rmse"] == pytest.approx(eager["test"]["rmse"], rel=1e-3)


def test_conformer_ensembles_train_in_sync_across_ranks(shared_cache, tmp_path):
    """Every rank draws the same conformer for a molecule (seed and epoch only)."""
    out = tmp_path / "conformers"
    done = _torchrun([*ARGS, "--conformers", "2", "--epochs", "2", "--out", str(out)], shared_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = _metrics(out)
    assert metrics["distributed"]["ranks_in_sync"] is True
    assert metrics["conformers_per_molecule"] == 2


def test_two_ranks_land_where_one_process_does(runs):
    one, two = (pd.read_csv(runs[k] / "history.csv") for k in ("one", "two"))
    assert len(one) == len(two) == 4
    # The mean of the ranks' gradients is the one-process gradient of the global batch (task
    # loss and balancing loss alike), and the default model has no dropout or gate noise
    # (which each rank would draw for itself): all 4 epochs agree to round-off (measured
    # 1e-7; balancing each rank's own molecules, the losses drifted to 7e-3 by epoch 4).
    for column in ("loss", "task_loss", "aux_loss", "val_rmse"):
        np.testing.assert_allclose(two[column], one[column], rtol=1e-5, err_msg=column)
    assert _metrics(runs["two"])["test"]["rmse"] == pytest.approx(
        _metrics(runs["one"])["test"]["rmse"], rel=1e-5
    )


def test_loader_workers_make_each_rank_the_batches_it_makes_in_line(runs, shared_cache, tmp_path):
    """Each rank's worker assembles that rank's slices ahead: the first two epochs are the
    2-rank run's without workers, to the bit."""
    out = tmp_path / "workers"
    options = ["--loader-workers", "1", "--epochs", "2", "--out", str(out)]
    done = _torchrun([*ARGS, *options], shared_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _metrics(out)["distributed"]["ranks_in_sync"] is True
    ahead, inline = (pd.read_csv(p / "history.csv") for p in (out, runs["two"]))
    pd.testing.assert_frame_equal(
        ahead.drop(columns="seconds"), inline.drop(columns="seconds").iloc[:2]
    )


def test_slices_of_different_sizes_take_the_one_process_step(shared_cache, tmp_path):
    """A global batch of 15 gives the ranks 8 and 7 molecules (the last one of 3: 2 and 1).
    Each rank divides its loss by half the global batch's labels and balances the experts'
    load over the global batch, so the mean of the ranks' gradients is the one-process
    gradient, and the history weighs each rank's loss by half the batch: the first epoch
    matches the one-process run to round-off. Each rank's own mean missed by 4e-4, and the
    balancing loss of each rank's own molecules by 0.8 % in val RMSE."""
    uneven = [*ARGS[: ARGS.index("--batch-size")], "--batch-size", "15", "--device", "cpu",
              "--split", "random", "--quiet", "--epochs", "1"]  # fmt: skip
    ran = _one_and_two(uneven, shared_cache, tmp_path)
    one, two = (pd.read_csv(ran[k] / "history.csv").iloc[0] for k in ("one", "two"))
    for column in ("loss", "task_loss", "aux_loss", "val_rmse"):
        np.testing.assert_allclose(two[column], one[column], rtol=1e-6, err_msg=column)


def test_a_killed_rank_ends_the_run_clearly_and_resume_continues_it(runs, shared_cache, tmp_path):
    out = tmp_path / "killed"
    done = _torchrun(
        [*ARGS, "--out", str(out)],
        shared_cache,
        entry=[str(FAULT_ENTRY)],
        MIMOE_FAULT="kill:1:2",
    )
    assert done.returncode != 0
    assert "mimoe train: stopped: rank 0 of 2" in done.stderr and "--resume" in done.stderr
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["train_state"]["epoch"] == 2  # epochs 0 and 1 finished
    resumed = _torchrun([*ARGS, "--out", str(out), "--resume"], shared_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after, uninterrupted = (pd.read_csv(p / "history.csv") for p in (out, runs["two"]))
    assert len(after) == 4
    pd.testing.assert_frame_equal(
        after.drop(columns="seconds"), uninterrupted.drop(columns="seconds")
    )


@pytest.mark.slow
def test_a_killed_rank_with_loader_workers_ends_the_run_as_clearly(runs, shared_cache, tmp_path):
    """torchrun stops the other rank with SIGTERM to its process group: its loader worker,
    in a group of its own, is not hit first, so the rank stops with its one line, not the
    loader's "worker killed" traceback; and the resumed run is the uninterrupted one."""
    out, workers = tmp_path / "killed_workers", ["--loader-workers", "1"]
    done = _torchrun(
        [*ARGS, *workers, "--out", str(out)],
        shared_cache,
        entry=[str(FAULT_ENTRY)],
        MIMOE_FAULT="kill:1:2",
    )
    assert done.returncode != 0
    assert "mimoe train: stopped: rank 0 of 2" in done.stderr, done.stderr[-3000:]
    # torchrun's own report of the failed ranks is the one traceback
    assert "DataLoader" not in done.stderr and done.stderr.count("Traceback") == 1
    resumed = _torchrun([*ARGS, *workers, "--out", str(out), "--resume"], shared_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after, uninterrupted = (pd.read_csv(p / "history.csv") for p in (out, runs["two"]))
    pd.testing.assert_frame_equal(
        after.drop(columns="seconds"), uninterrupted.drop(columns="seconds")
    )


def test_a_nan_loss_on_one_rank_is_skipped_by_both(shared_cache, tmp_path):
    """Fault injection: rank 1's loss is NaN in its second step. The all-reduced gradients
    are NaN on both ranks, both skip that step, and the weights stay identical."""
    out = tmp_path / "nan"
    done = _torchrun(
        [*ARGS, "--epochs", "2", "--out", str(out)], shared_cache,
        entry=[str(FAULT_ENTRY)], MIMOE_FAULT="nan:1:1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert _metrics(out)["distributed"]["ranks_in_sync"] is True
    assert pd.read_csv(out / "history.csv")["skipped_steps"].tolist() == [1, 0]
    assert done.stderr.count("epoch 0: 1 of 3 training steps skipped") == 1  # rank 0 warns


@pytest.mark.parametrize("timed_out_on", [1, 0])
def test_a_molecule_made_on_one_rank_only_is_left_out_by_both(shared_cache, tmp_path, timed_out_on):
    """Without a shared cache each rank makes its own conformers, and one can time out on one
    rank only: both ranks train without that molecule, rank 0's skipped.csv says why, and
    rank 0 warns, whichever rank lacked it."""
    from mimoe_core.data import load_dataset

    lost = load_dataset("freesolv", limit=60).smiles_of(5)
    out = tmp_path / "lost"
    done = _torchrun(
        [*ARGS, "--epochs", "1", "--no-cache", "--jobs", "1", "--out", str(out)], shared_cache,
        entry=[str(FAULT_ENTRY)], MIMOE_FAULT=f"timeout:{timed_out_on}:{lost}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("1 molecule(s) kept by some ranks were not kept by the others") == 1
    metrics = _metrics(out)
    assert metrics["distributed"]["ranks_in_sync"] is True
    skipped = pd.read_csv(out / "skipped.csv")
    reason = skipped.loc[skipped["input"] == lost, "reason"].tolist()
    if timed_out_on == 1:
        assert reason == ["kept on rank 0 but not on rank(s) 1, where its conformer timed out "
                          "or failed: every rank trains on the same molecules"]  # fmt: skip
    else:  # rank 0's own reason
        assert len(reason) == 1 and "timed out" in reason[0]
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 59
    assert metrics["n_skipped"] == len(skipped)


def test_a_rank_that_fails_while_featurizing_stops_the_others_with_one_line(shared_cache, tmp_path):
    """Rank 0 rejects the input while the others wait for its featurization: they stop with
    the one-line message, not gloo's traceback, and promise no last.pt."""
    data = tmp_path / "few.csv"
    pd.DataFrame({"smiles": ["CCO", "CCC", "CCN", "CCCl"], "y": [1.0, 2.0, 3.0, 4.0]}).to_csv(
        data, index=False
    )
    options = ["train", "--data", str(data), "--target-cols", "nosuch", "--device", "cpu",
               "--batch-size", "2", "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
    done = _torchrun(options, shared_cache)
    assert done.returncode != 0
    assert "mimoe train: error: column(s) ['nosuch'] not found" in done.stderr
    assert "mimoe train: stopped: rank 1 of 2: a collective operation failed" in done.stderr
    # no rank's traceback (torchrun's own report of the failed child follows the lines)
    assert "RuntimeError" not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize(
    ("fault", "timeout", "message"),
    [
        # a rank stalls at epoch 1 for 60 s; 10 s is no slow start on a loaded machine
        ("stall:1:1", "10", "did not answer within --dist-timeout"),
        # a rank starts 20 s late: rank 0's one-line message (torchrun's report follows it)
        ("late:1:20", "2", "mimoe train: stopped: rank 0: the ranks did not all join the run "
         "within --dist-timeout (2 s"),
    ],
    ids=["stalled", "never_joins"],
)  # fmt: skip
def test_a_stalled_or_absent_rank_fails_the_run_at_the_timeout_instead_of_hanging(
    fault, timeout, message, shared_cache, tmp_path
):
    done = _torchrun(
        [*ARGS, "--out", str(tmp_path / "run"), "--dist-timeout", timeout],
        shared_cache,
        entry=[str(FAULT_ENTRY)],
        MIMOE_FAULT=fault,
    )
    assert done.returncode != 0
    assert message in done.stderr


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_ranks_stop_when_the_launcher_is_killed(shared_cache, tmp_path):
    """A SIGKILLed torchrun cannot stop its ranks; they must not be left running (or waiting)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", str(FAULT_ENTRY), *ARGS,
               "--out", str(tmp_path / "orphans"), "--dist-timeout", "120"]  # fmt: skip
    environment = {**os.environ, "MIMOE_CACHE_DIR": str(shared_cache), "OMP_NUM_THREADS": "1",
                   "MIMOE_FAULT": "stall:1:1"}  # fmt: skip
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as sink:  # the ranks inherit it and outlive the launcher
        launcher = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL,
                                    stderr=sink)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        ranks: list[int] = []
        # Rank 1 stalls at epoch 1 for a minute; last.pt of epoch 0 means both are in training.
        while time.monotonic() < deadline and not (tmp_path / "orphans" / "last.pt").exists():
            ranks = _children(launcher.pid) or ranks
            time.sleep(0.2)
        ranks = _children(launcher.pid) or ranks
        assert len(ranks) == 2, "torchrun did not start two ranks in time"
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in ranks):
            time.sleep(0.2)
        left = [pid for pid in ranks if _alive(pid)]
    finally:
        launcher.kill()
        for pid in _children(launcher.pid):
            os.kill(pid, signal.SIGKILL)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "ranks outlived their SIGKILLed launcher by 30 s"
    reported = errors.read_text()
    assert reported.count("mimoe train: stopped: rank") == 2, reported[-3000:]
    assert "Traceback" not in reported  # e.g. from a second SIGTERM while stopping


_HANGS_WHEN_FREED = """
import sys, time
import torch.distributed as dist
from mimoe_core import cli, cli_train
from mimoe_core.training.distributed import RankFailure

class HangsWhenFreed:
    def __del__(self):
        time.sleep(600)

def fails(args, context):
    held = HangsWhenFreed()  # freed with this frame, when Python's exit clears the error
    raise RankFailure("rank 0 of 2: a collective operation failed")

dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
cli_train._train = fails
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_failed_rank_ends_even_if_its_teardown_would_hang(tmp_path):
    """A failed rank leaves without Python's teardown, which can deadlock in gloo's
    destructor (a finalizer that sleeps stands in for it here)."""
    script = tmp_path / "hangs.py"
    script.write_text(_HANGS_WHEN_FREED)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "init"), *ARGS, "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "mimoe train: stopped: rank 0 of 2: a collective" in done.stderr
    assert time.monotonic() - started < 100  # not the finalizer's 600 s


def test_the_sigterm_handler_acts_once_and_ignores_a_repeat():
    previous = signal.signal(signal.SIGTERM, distributed._stop_on_sigterm(DistributedContext()))
    try:
        with pytest.raises(distributed.RankFailure, match="was stopped"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # the launcher's death, delivered again
        time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def _perturbed_rank(rank: int, init_file: str, perturb: bool, found: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    module = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(module.weight, 0.5)
    torch.nn.init.zeros_(module.bias)
    if perturb and rank == 1:
        with torch.no_grad():
            module.bias.fill_(1e-7)
    context = distributed.current()
    found[rank] = distributed.weights_in_sync(module, context)
    torch.distributed.destroy_process_group()


def _two_spawned_ranks(target, init_file: Path, *args) -> dict:
    """Run ``target(rank, init_file, *args, found)`` in 2 spawned processes (a gloo group
    initialized from ``init_file``); what each rank put into ``found``."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        found = manager.dict()
        procs = [
            ctx.Process(target=target, args=(rank, str(init_file), *args, found))
            for rank in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0]
        return dict(found)


@pytest.mark.parametrize("perturb", [False, True])
def test_weights_in_sync_sees_a_difference_of_one_weight(tmp_path, perturb):
    found = _two_spawned_ranks(_perturbed_rank, tmp_path / "init", perturb)
    assert found == {0: not perturb, 1: not perturb}


def _agreeing_rank(rank: int, init_file: str, found: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    context = distributed.current()
    same = np.array([4, 7, 9])
    own = np.array([4, 5, 7, 9]) if rank == 0 else np.array([4, 7, 8, 9])
    found[rank] = {
        "same": distributed.rows_kept_by_every_rank(same, context),
        "own": distributed.rows_kept_by_every_rank(own, context),
    }
    for name, values in (("agree", {"a": 1, "b": 2}), ("differ", {"a": 1, "b": 2 + rank})):
        try:
            distributed.check_ranks_agree(values, context, "hint")
            found[rank] = {**found[rank], name: None}
        except ValueError as err:
            found[rank] = {**found[rank], name: str(err)}
    torch.distributed.destroy_process_group()


def test_the_ranks_keep_the_molecules_they_all_have_and_check_that_they_agree(tmp_path):
    found = _two_spawned_ranks(_agreeing_rank, tmp_path / "init")
    for rank, lacking in ((0, {5: [1]}), (1, {8: [0]})):
        kept, left_out, anywhere = found[rank]["own"]
        np.testing.assert_array_equal(kept, [4, 7, 9])
        assert left_out == lacking and anywhere == 2  # rows 5 and 8
        kept, left_out, anywhere = found[rank]["same"]
        np.testing.assert_array_equal(kept, [4, 7, 9])
        assert left_out == {} and anywhere == 0
        assert found[rank]["agree"] is None
        message = "the ranks hold different b (rank(s) 1 differ from rank 0): hint"
        assert found[rank]["differ"] == message


def test_a_fingerprint_sees_contents_order_shape_and_type():
    rows = np.arange(6, dtype=np.int64)
    same = distributed.fingerprint(rows.copy())
    assert distributed.fingerprint(rows) == same and 0 <= same < 2**63
    for other in (rows[::-1], rows.reshape(2, 3), rows.astype(np.int32), rows[:5]):
        assert distributed.fingerprint(other) != same
    split_later = distributed.fingerprint(rows[:3], rows[3:])
    assert split_later != distributed.fingerprint(rows[:2], rows[2:])


def test_the_ranks_losses_average_to_the_one_process_loss_of_the_global_batch():
    """Each rank divides its summed loss by its share of the global batch's present labels,
    so DDP's mean of the ranks' gradients is the one-process gradient, also when the ranks
    hold different numbers of labels (missing labels, slices one molecule apart)."""
    from mimoe_core.training.losses import masked_gaussian_nll, masked_loss

    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(9, 3, generator=gen, requires_grad=True)
    log_var = torch.randn(9, 3, generator=gen, requires_grad=True)
    target = torch.randn(9, 3, generator=gen)
    mask = torch.rand(9, 3, generator=gen) > 0.4
    losses = {
        "mse": lambda p, lv, t, m, n=None: masked_loss(p, t, m, "regression", n),
        "bce": lambda p, lv, t, m, n=None: masked_loss(p, (t > 0).float(), m, "classification", n),
        "nll": lambda p, lv, t, m, n=None: masked_gaussian_nll(p, lv, t, m, n),
    }
    parts = [list(range(0, 9, 2)), list(range(1, 9, 2))]  # 5 and 4 molecules
    assert mask[parts[0]].sum() != mask[parts[1]].sum()  # the ranks hold different counts
    for name, loss in losses.items():
        inputs = (pred, log_var) if name == "nll" else (pred,)
        whole = torch.autograd.grad(loss(pred, log_var, target, mask), inputs)
        share = float(mask.sum()) / 2
        per_rank = [loss(pred[i], log_var[i], target[i], mask[i], share) for i in parts]
        averaged = torch.autograd.grad(sum(per_rank) / 2, inputs)
        naive = torch.autograd.grad(
            sum(loss(pred[i], log_var[i], target[i], mask[i]) for i in parts) / 2, (pred,)
        )
        for mine, one in zip(averaged, whole, strict=True):
            torch.testing.assert_close(mine, one, rtol=1e-6, atol=1e-7, msg=name)
        # each rank's own mean would weigh the ranks' labels unequally
        assert not torch.allclose(naive[0], whole[0], rtol=1e-3), name


def _routing_of(molecules: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate logits of a global batch (fixed seed) and their Top-2 mask, K = 5."""
    from mimoe_core.models.gate import top_k_routing

    logits = torch.randn(molecules, 5, generator=torch.Generator().manual_seed(3)) * 2
    return logits, top_k_routing(logits, 2).selected


def _balancing_rank(rank: int, init_file: str, found: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    logits, selected = _routing_of(9)
    mine = distributed.rank_slice(list(range(9)), distributed.current())
    part = logits[mine].clone().requires_grad_(True)
    loss = distributed.global_balancing_loss(
        torch.softmax(part, -1), selected[mine], 9, distributed.current()
    )
    loss.backward()
    found[rank] = (mine, float(loss), part.grad.clone())
    torch.distributed.destroy_process_group()


def test_the_ranks_balancing_losses_average_to_the_one_process_loss_of_the_global_batch(
    tmp_path,
):
    """2 gloo ranks with 5 and 4 of 9 molecules: the mean of their balancing losses, and of
    their gradients (what DDP applies), is the one-process loss of the 9 and its gradient."""
    from mimoe_core.models.gate import load_balancing_loss

    logits, selected = _routing_of(9)
    whole_logits = logits.clone().requires_grad_(True)
    whole = load_balancing_loss(torch.softmax(whole_logits, -1), selected)
    whole.backward()
    whole = whole.item()
    found = _two_spawned_ranks(_balancing_rank, tmp_path / "init")
    assert sorted(len(found[r][0]) for r in (0, 1)) == [4, 5]
    np.testing.assert_allclose((found[0][1] + found[1][1]) / 2, whole, rtol=1e-6)
    parts = [found[r][0] for r in (0, 1)]
    averaged = torch.zeros_like(logits)
    for mine, _, grad in found.values():
        averaged[mine] = grad / 2
    torch.testing.assert_close(averaged, whole_logits.grad, rtol=1e-5, atol=1e-7)
    # Each rank balancing its own molecules (as before) would take another step.
    own = [load_balancing_loss(torch.softmax(logits[m], -1), selected[m]) for m in parts]
    assert abs(float(sum(own)) / 2 - whole) > 1e-3


class _Prediction(NamedTuple):
    y: torch.Tensor


class _Buffered(torch.nn.Module):
    """A model with one weight and one buffer, which its rank sets to its own number."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.register_buffer("offset", torch.full((1,), float(rank)))

    def forward_batch(self, x: torch.Tensor) -> _Prediction:
        return _Prediction(x * self.weight + self.offset)


def _buffers_rank(rank: int, init_file: str, found: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    model = _Buffered(rank)
    forward = distributed.data_parallel(model, distributed.current(), torch.device("cpu"))
    at_start = float(model.offset)
    if rank == 0:
        model.offset.fill_(5.0)  # a later change on rank 0 is not broadcast per step
    forward(torch.ones(1)).y.sum().backward()
    found[rank] = (at_start, float(model.offset), float(model.weight.grad))
    del forward  # DDP before the group, as `mimoe train` frees them (see bench_ddp_step)
    torch.distributed.destroy_process_group()


def test_buffers_are_synced_once_when_ddp_wraps_the_model_not_every_step(tmp_path):
    assert distributed.FORWARD_SYNC_BUFFERS is False
    found = _two_spawned_ranks(_buffers_rank, tmp_path / "init")
    # Rank 1's buffer took rank 0's value when DDP wrapped the model, and kept it.
    assert found == {0: (0.0, 5.0, 1.0), 1: (0.0, 0.0, 1.0)}


def test_the_buffer_option_has_the_name_this_torch_knows():
    class Current:
        def __init__(self, module, forward_sync_buffers=None, broadcast_buffers=None): ...

    class Older:
        def __init__(self, module, broadcast_buffers=True): ...

    assert distributed._buffer_sync_option(Current, False) == {"forward_sync_buffers": False}
    assert distributed._buffer_sync_option(Older, False) == {"broadcast_buffers": False}


def test_rank_slices_split_a_global_batch_without_overlap():
    chosen = list(range(11))
    parts = [distributed.rank_slice(chosen, DistributedContext(r, 3)) for r in range(3)]
    assert sorted(sum(parts, [])) == chosen
    assert [len(p) for p in parts] == [4, 4, 3]


def _atom_spread(parts: list[list[int]], atoms: dict[int, int]) -> int:
    totals = [sum(atoms[i] for i in part) for part in parts]
    return max(totals) - min(totals)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_rank_slices_by_size_balance_the_atoms_of_each_rank(world):
    rng = np.random.default_rng(world)
    dealt, striped = [], []
    for _ in range(200):
        n = int(rng.integers(world, 40))
        chosen = [int(i) for i in rng.permutation(1000)[:n]]
        sizes = [int(s) for s in rng.integers(3, 80, n)]
        of = dict(zip(chosen, sizes, strict=True))
        parts = [distributed.rank_slice(chosen, DistributedContext(r, world), sizes)
                 for r in range(world)]  # fmt: skip
        assert sorted(sum(parts, [])) == sorted(chosen)  # a partition
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        strided = [chosen[r::world] for r in range(world)]

        dealt.append(_atom_spread(parts, of))
        striped.append(_atom_spread(strided, of))
        # each rank keeps the batch's order among its own molecules
        assert all(p == sorted(p, key=chosen.index) for p in parts)
    # the atom totals of the ranks differ far less than with every world_size-th molecule
    assert np.mean(dealt) < 0.3 * np.mean(striped)


def _snake_deal(sizes: np.ndarray, world: int) -> np.ndarray:
    """The deal used until 2026-12-07: largest first, in the order 0, 1, ..., W-1, W-1, ..., 0."""
    turn = np.arange(len(sizes)) % (2 * world)
    owner = np.empty(len(sizes), dtype=np.int64)
    owner[np.argsort(-sizes, kind="stable")] = np.where(turn < world, turn, 2 * world - 1 - turn)
    return owner


@pytest.mark.parametrize("world", [2, 3, 8])
def test_deal_by_size_beats_the_snake_order_on_the_slowest_rank(world):
    rng = np.random.default_rng(world)
    dealt, snake = [], []
    for _ in range(300):
        n = int(rng.integers(world, 300))
        # atom counts (hydrogens included) spread as in drug-like sets: median 30, a long tail
        sizes = np.clip(rng.lognormal(3.4, 0.45, n).astype(np.int64), 3, 250)
        owner = distributed.deal_by_size(sizes, world)
        counts = np.bincount(owner, minlength=world)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n
        for found, deal in ((dealt, owner), (snake, _snake_deal(sizes, world))):
            totals = np.bincount(deal, weights=sizes, minlength=world)
            found.append(totals.max() / totals.mean() - 1)
    # the slowest rank's excess over the mean, which every step waits for (a median: batches
    # of a few molecules per rank cannot be balanced by any deal)
    assert np.median(dealt) < 0.25 * np.median(snake)


def test_deal_by_size_deals_rounds_then_swaps_the_heaviest_and_lightest_ranks_closer():
    # rounds (10, 9), (8, 7), (6, 1): totals 23 and 18; swapping 10 and 8 gives 21 and 20
    owner = distributed.deal_by_size([10, 9, 8, 7, 6, 1], 2)
    assert owner.tolist() == [1, 1, 0, 0, 0, 1]
    # rounds (9, 8), (7, 2): 11 and 15, which no swap brings closer
    assert distributed.deal_by_size([2, 9, 7, 8], 2).tolist() == [0, 0, 1, 1]
    assert distributed.deal_by_size([], 3).tolist() == []
    assert distributed.deal_by_size([5], 3).tolist() == [0]
    assert distributed.deal_by_size([4, 4], 3).tolist() == [0, 1]


def test_one_process_has_world_size_one_and_gathers_locally(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = distributed.init_from_env("cpu")
    assert context == DistributedContext() and context.is_main and not context.distributed
    found = distributed.gather_rows(list(range(5)), lambda p: {"x": np.array(p)}, context)
    np.testing.assert_array_equal(found["x"], np.arange(5))
    with pytest.raises(ValueError, match="timeout must be positive"):
        distributed.init_from_env("cpu", timeout=0)


def test_a_batch_smaller_than_the_ranks_is_an_error(freesolv40, monkeypatch, capsys):
    from mimoe_core.training import TrainingRun, TrainSettings

    dataset, split = freesolv40
    with pytest.raises(ValueError, match="at least the number of ranks"):
        TrainingRun(
            dataset, split, settings=TrainSettings(batch_size=2),
            context=DistributedContext(0, 4, 0, "gloo"),
        )  # fmt: skip
    monkeypatch.setattr(
        distributed, "init_from_env", lambda *a, **k: DistributedContext(0, 4, 0, "gloo")
    )
    assert main([*ARGS, "--batch-size", "2", "--out", "unused"]) == 2
    assert "--batch-size 2 is split across 4 ranks" in capsys.readouterr().err
    assert main([*ARGS, "--ensemble-size", "2", "--out", "unused"]) == 2
    assert "one model per launch" in capsys.readouterr().err


def test_forget_unused_gradients_leaves_none_where_one_process_would():
    used, unused = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    model = torch.nn.ModuleList([used, unused])
    touch = torch.stack([p.view(-1)[0] for p in model.parameters()]).sum()
    (used(torch.ones(2, 3)).sum() + 0.0 * touch).backward()
    assert unused.weight.grad is not None and not unused.weight.grad.any()
    distributed.forget_unused_gradients(model)
    assert unused.weight.grad is None and unused.bias.grad is None
    assert used.weight.grad is not None and used.weight.grad.abs().sum() > 0


def test_a_sigterm_during_the_checkpoint_write_takes_effect_after_it():
    received, written = [], []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(written[:]))
    try:
        with distributed.checkpoint_in_step(DistributedContext()):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the signal has arrived, but waits
            written.append("last.pt")
        assert received == [["last.pt"]]  # once, and only after the write
        assert signal.getsignal(signal.SIGTERM) is not None  # the earlier handler is back
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert len(received) == 2
    finally:
        signal.signal(signal.SIGTERM, previous)
