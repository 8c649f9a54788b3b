"""Fault injection on ``mimoe train`` with real processes: ``kill -9``, then ``--resume``; corrupt
run files give one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mimoe_core.cli import main

SMILES = ["CCO", "CCC", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "OCCO", "CCCC", "c1ccncc1",
          "CC#N", "CCOC", "CCCO", "CC(C)O", "CCS", "NCCO", "OC(=O)CC", "CCCCO", "CC(C)C",
          "c1ccccc1C", "CCOCC", "ClCCl", "CC(=O)C", "OCC(O)CO", "c1ccoc1"]  # fmt: skip


def _train_args(data: Path, out: Path, epochs: int, extra: tuple[str, ...] = ()) -> list[str]:
    return ["train", "--data", str(data), "--target-cols", "y", "--out", str(out),
            "--hidden", "16", "--epochs", str(epochs), "--batch-size", "4", "--patience",
            str(epochs), "--quiet", "--jobs", "1", "--device", "cpu", "--split", "random",
            *extra]  # fmt: skip


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mimoe_core", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _kill_after_first_checkpoint(args: list[str], run: Path, env: dict, delay: float) -> None:
    """Start ``mimoe train``, wait for ``last.pt`` to exist, let it train ``delay`` seconds into
    the next epoch, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-m", "mimoe_core", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (run / "last.pt").is_file():
            if proc.poll() is not None:
                raise AssertionError(f"train ended before a checkpoint: {proc.stderr.read()}")
            assert time.monotonic() < deadline, "no last.pt after 300 s"
            time.sleep(0.02)
        time.sleep(delay)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "metrics.json").exists()


def _kill_and_resume(tmp_path: Path, smiles: list[str], epochs: int) -> None:
    data = tmp_path / "data.csv"
    pd.DataFrame({"smiles": smiles, "y": [0.1 * len(s) for s in smiles]}).to_csv(data, index=False)
    env = {**os.environ, "MIMOE_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    done = _run(_train_args(data, clean, epochs), env)
    assert done.returncode == 0, done.stderr
    history = pd.read_csv(clean / "history.csv")
    assert len(history) == epochs
    # Kill a third of an epoch after the first last.pt: mid-epoch, with a checkpoint on disk.
    _kill_after_first_checkpoint(_train_args(data, killed, epochs), killed, env,
                                 delay=history["seconds"].median() / 3)  # fmt: skip
    resumed = _run(_train_args(data, killed, epochs, ("--resume",)), env)
    assert resumed.returncode == 0, resumed.stderr
    expected = {**json.loads((clean / "metrics.json").read_text()), "timing": None}
    assert {**json.loads((killed / "metrics.json").read_text()), "timing": None} == expected
    after = pd.read_csv(killed / "history.csv")
    pd.testing.assert_frame_equal(after.drop(columns="seconds"), history.drop(columns="seconds"))


def test_kill_9_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    _kill_and_resume(tmp_path, SMILES, epochs=4)


@pytest.mark.slow
def test_kill_9_then_resume_on_a_real_dataset(tmp_path):
    from mimoe_core.data import load_dataset

    table = load_dataset("freesolv", limit=200)
    _kill_and_resume(tmp_path, list(table.inputs), epochs=8)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data = root / "data.csv"
    pd.DataFrame({"smiles": SMILES[:16], "y": range(16)}).to_csv(data, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIMOE_CACHE_DIR", str(root / "cache"))
        assert main(_train_args(data, root / "run", 2)) == 0
    return data, root / "run"


def _copy_of(run: Path, copy: Path) -> Path:
    """A copy of the run folder's files (a test may damage them)."""
    copy.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    return copy


@pytest.mark.parametrize("name", ["model.pt", "last.pt"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "overwritten", "empty"])
def test_a_damaged_checkpoint_is_one_line_and_exit_2(finished_run, tmp_path, capsys, name, damage):
    data, run = finished_run
    copy = _copy_of(run, tmp_path / "run")
    blob = (copy / name).read_bytes()
    rng = np.random.default_rng(sum(map(ord, name + damage)))
    # Garbage: random bytes, and the real file with random bytes written over its middle.
    noise = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    middle = len(blob) // 2
    overwritten = blob[:middle] + noise + blob[middle + len(noise) :]
    broken = {"truncate": blob[:middle], "garbage": noise, "overwritten": overwritten, "empty": b""}
    (copy / name).write_bytes(broken[damage])
    if name == "model.pt":
        args = ["predict", "--model", str(copy), "--data", str(data), "--out",
                str(tmp_path / "p.csv"), "--quiet"]  # fmt: skip
    else:
        args = _train_args(data, copy, 3, ("--resume",))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert name in err and "not a readable mimoe checkpoint" in err


def test_resume_rewrites_model_pt_from_the_best_weights_it_records(finished_run, tmp_path):
    """A run stopped between writing model.pt and last.pt reruns that epoch on --resume, and
    a rerun need not repeat it (GPU kernels are not deterministic): model.pt must end as the
    weights that last.pt and metrics.json describe, not those of the stopped attempt."""
    import torch

    data, run = finished_run
    copy = _copy_of(run, tmp_path / "run")
    stale = torch.load(copy / "model.pt", weights_only=True)
    stale["state_dict"] = {k: v + 1 if v.is_floating_point() else v
                           for k, v in stale["state_dict"].items()}  # fmt: skip
    torch.save(stale, copy / "model.pt")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIMOE_CACHE_DIR", str(run.parent / "cache"))
        assert main(_train_args(data, copy, 2, ("--resume",))) == 0
    best = torch.load(copy / "last.pt", weights_only=True)["best_state_dict"]
    written = torch.load(copy / "model.pt", weights_only=True)["state_dict"]
    assert written.keys() == best.keys()
    for key, value in best.items():
        torch.testing.assert_close(written[key], value, rtol=0, atol=0, msg=key)
