"""Several nodes, simulated on this machine: one ``torchrun`` launcher per node (static
rendezvous, so node 0 holds rank 0), each node with a cache folder of its own, as nodes
with their own disks have.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

MAIN_FIRST_ENTRY = Path(__file__).with_name("ddp_main_first.py")
HOST_ENTRY = Path(__file__).with_name("ddp_host.py")
ARGS = ["train", "--dataset", "freesolv", "--limit", "40", "--hidden", "16", "--batch-size",
        "8", "--device", "cpu", "--split", "random", "--quiet"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nodes(
    per_node: list[list[str]],
    caches: list[Path],
    ranks_per_node: int = 1,
    hosts: list[str] | None = None,
) -> list[subprocess.CompletedProcess]:
    """One torchrun launcher per node, node n running ``per_node[n]`` (its entry and
    arguments) with ``caches[n]`` as its cache folder (and ``hosts[n]`` as
    ``MIMOE_TEST_HOSTNAME``); the launchers' results in node order."""
    port = _free_port()
    launchers = []
    for node, (arguments, cache) in enumerate(zip(per_node, caches, strict=True)):
        command = [sys.executable, "-m", "torch.distributed.run",
                   "--nnodes", str(len(per_node)), "--node-rank", str(node),
                   "--nproc-per-node", str(ranks_per_node), "--master-addr", "127.0.0.1",
                   "--master-port", str(port), *arguments]  # fmt: skip
        environment = {**os.environ, "MIMOE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
        if hosts is not None:
            environment["MIMOE_TEST_HOSTNAME"] = hosts[node]
        launchers.append(subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ))  # fmt: skip
    finished = []
    for launcher in launchers:
        try:
            stdout, stderr = launcher.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for other in launchers:
                other.kill()
            raise
        finished.append(
            subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr)
        )
    return finished


def test_each_node_featurizes_once_after_rank_0_then_its_other_ranks_read_it(tmp_path):
    """2 nodes x 2 ranks: rank 0 first, then node 1's first rank, then ranks 1 and 3."""
    entry = [str(MAIN_FIRST_ENTRY), str(tmp_path / "order")]
    done = _nodes([entry, entry], [tmp_path / "cache0", tmp_path / "cache1"], ranks_per_node=2)
    assert all(d.returncode == 0 for d in done), done[0].stderr[-2000:] + done[1].stderr[-2000:]
    seen = {rank: (tmp_path / "order" / str(rank)).read_text() for rank in range(4)}
    assert seen[0] == ""
    assert seen[2] == "0"  # node 1's local rank 0
    for rank in (1, 3):  # in the same phase: each may or may not see the other
        assert {"0", "2"} <= set(seen[rank].split()), seen
    # the first rank of each node fills its cache; the others only read it
    fills = {rank: (tmp_path / "order" / f"{rank}.fills").read_text() for rank in range(4)}
    assert fills == {0: "1", 1: "0", 2: "1", 3: "0"}


def test_two_nodes_train_in_sync_and_resume_needs_the_same_checkpoint_everywhere(tmp_path):
    """Node 1 has a cache and a run folder of its own: training works (its cache is filled
    on the node), but a resume that only rank 0 can read is a clear error on every node."""
    caches = [tmp_path / "cache0", tmp_path / "cache1"]
    outs = [tmp_path / "run0", tmp_path / "run1"]
    per_node = [["-m", "mimoe_core", *ARGS, "--epochs", "2", "--out", str(out)] for out in outs]
    done = _nodes(per_node, caches)
    assert all(d.returncode == 0 for d in done), done[0].stderr[-2000:] + done[1].stderr[-2000:]
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["distributed"]["ranks_in_sync"]
    assert not (outs[1] / "metrics.json").exists()  # only rank 0 writes the run
    assert any(caches[1].iterdir())  # node 1 featurized into its own cache

    resumed = [[*node[:-4], "--epochs", "3", *node[-2:], "--resume"] for node in per_node]
    done = _nodes(resumed, caches)
    message = (
        "--resume: the ranks found different checkpoints in {} (rank 0: after epoch 2, "
        "rank 1: no last.pt)"
    )
    for node, finished in enumerate(done):
        assert finished.returncode != 0
        assert message.format(outs[node]) in finished.stderr, finished.stderr[-2000:]
    assert torch.load(outs[0] / "last.pt", weights_only=True)["train_state"]["epoch"] == 2


def test_a_cache_folder_shared_by_nodes_of_two_hosts_is_a_clear_error(tmp_path):
    """Both nodes see one cache folder (a network home directory, say) from different hosts:
    every rank stops before featurizing, with the same message."""
    shared = tmp_path / "cache"
    outs = [tmp_path / "run0", tmp_path / "run1"]
    per_node = [[str(HOST_ENTRY), *ARGS, "--epochs", "1", "--out", str(out)] for out in outs]
    done = _nodes(per_node, [shared, shared], hosts=["alpha", "beta"])
    for finished in done:
        assert finished.returncode != 0, finished.stderr[-2000:]
        assert "(exitcode: 2)" in finished.stderr  # the rank's: an input error, not a crash
        assert "mimoe train: error: the cache folder " in finished.stderr
        assert "is shared by nodes on different hosts (alpha, beta)" in finished.stderr
    assert not any(shared.glob(".host-probe-*"))  # the probes are cleaned up
    assert not (shared / "featurize.sqlite").exists()  # nothing was featurized
