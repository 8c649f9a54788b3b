"""CUDA checks: bf16 autocast forward/backward, sparse dispatch, training runs, NCCL DDP.

Marked ``gpu`` (skipped by default) and skipped when torch sees no CUDA device. Select them
with ``pytest -m gpu tests/models/test_gpu.py``. ``MIMOE_GPU_TEST_DEVICE=cpu`` runs the same
checks on the CPU (CPU autocast), to check the tests themselves on a machine without a GPU.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from molecule_factory import Molecules

from mimoe_core.models import EXPERTS, create_model

DEVICE = os.environ.get("MIMOE_GPU_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
    ),
]


def _model(backbone: str, **overrides):
    config = {
        "backbone": backbone,
        "expert": {"hidden_channels": 32, "num_layers": 2},
        "gate": {"name": "mlp", "hidden_channels": 16},
        **overrides,
    }
    torch.manual_seed(0)
    return create_model(config).to(DEVICE)


def _batch(dtype=torch.float32, seed=0):
    mols = Molecules([6, 11, 5, 9, 13, 8, 7, 10], dtype=dtype, seed=seed)
    return (t.to(DEVICE) for t in (mols.z, mols.pos, mols.batch, mols.topo))


@pytest.mark.parametrize("backbone", sorted(EXPERTS))
def test_forward_and_backward_under_bfloat16_autocast(backbone):
    model = _model(backbone)
    z, pos, batch, topo = _batch()
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out = model(z, pos, batch, topo)
    assert out.y.device.type == DEVICE and torch.isfinite(out.y).all()
    (out.y.float().pow(2).mean() + out.aux_loss).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.gate.to_logits.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", sorted(EXPERTS))
def test_sparse_dispatch_equals_computing_every_expert(backbone):
    model = _model(backbone, top_k=2).double().eval()
    with torch.no_grad():
        model.gate.to_logits.bias.copy_(torch.tensor([0.0, 0.3, -0.2, 0.1, 0.2]))
        model.gate.to_logits.weight.mul_(50.0)
    z, pos, batch, topo = _batch(torch.float64, seed=3)
    sparse = model(z, pos, batch, topo)
    dense = model(z, pos, batch, topo, compute_all=True)
    assert (sparse.selected.sum(0) < len(sparse.y)).any(), "routing did not split the batch"
    torch.testing.assert_close(sparse.y, dense.y, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("backbone", ["painn", "schnet"])
def test_compiled_experts_under_bfloat16_autocast_follow_eager(backbone):
    """``--compile`` on the device (Triton kernels on CUDA) inside bf16 autocast."""
    from mimoe_core.models.compiled import compile_experts

    eager, compiled = _model(backbone), _model(backbone)
    compile_experts(compiled)
    z, pos, batch, topo = _batch()
    outputs = []
    for model in (eager, compiled):
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            out = model(z, pos, batch, topo)
        (out.y.float().pow(2).mean() + out.aux_loss).backward()
        outputs.append(out.y.float().detach())
    # bf16 keeps 8 bits of mantissa: the fused kernels round differently, within that.
    torch.testing.assert_close(outputs[1], outputs[0], rtol=5e-2, atol=5e-2)
    grads = [p.grad for p in compiled.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_short_training_run_and_checkpoint_round_trip(tmp_path):
    from mimoe_core.data import make_split
    from mimoe_core.featurization import featurize_dataset
    from mimoe_core.inference import predict
    from mimoe_core.training import TrainSettings, load_checkpoint, train

    ds = featurize_dataset("freesolv", limit=64, progress=False, n_jobs=1)
    split = make_split("random", ds.smiles)
    settings = TrainSettings(epochs=3, batch_size=16, device=DEVICE, progress=False)
    config = {"expert": {"hidden_channels": 32, "num_layers": 2}}
    result = train(ds, split, config, settings, out_dir=tmp_path)
    assert next(result.model.parameters()).device.type == DEVICE
    assert np.isfinite(result.metrics["test"]["rmse"])
    ckpt = load_checkpoint(tmp_path)
    smiles = [ds.data_list[i].smiles for i in split.test]
    again = predict(ckpt, smiles, device=DEVICE, n_jobs=1)
    frame = pd.read_csv(tmp_path / "test_predictions.csv")
    np.testing.assert_allclose(again.prediction[:, 0], frame["expt_pred"], rtol=2e-2, atol=2e-2)


def test_loader_workers_train_as_batches_made_in_line():
    """Batches from the workers' pinned memory, copied without blocking: the first epoch is
    the in-line one's (to rounding: CUDA sums scatters in its own order), so no step read a
    batch before its copy had landed."""
    from mimoe_core.data import make_split
    from mimoe_core.featurization import featurize_dataset
    from mimoe_core.training import TrainSettings, train

    ds = featurize_dataset("freesolv", limit=64, progress=False, n_jobs=1)
    split = make_split("random", ds.smiles)
    config = {"expert": {"hidden_channels": 32, "num_layers": 2}}
    first = []
    for workers in (0, 2):
        settings = TrainSettings(
            epochs=1, batch_size=16, device=DEVICE, progress=False, loader_workers=workers
        )
        first.append(train(ds, split, config, settings).history.iloc[0])
    for column in ("loss", "task_loss", "val_rmse"):
        np.testing.assert_allclose(first[1][column], first[0][column], rtol=2e-2, err_msg=column)


@pytest.mark.skipif(
    DEVICE != "cuda" or torch.cuda.device_count() < 2, reason="NCCL ranks need a GPU each"
)
def test_two_nccl_ranks_train_in_sync(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "mimoe_core", "train", "--dataset", "freesolv",
               "--limit", "64", "--epochs", "3", "--hidden", "32", "--batch-size", "16",
               "--device", "cuda", "--split", "random", "--quiet", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "MIMOE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["distributed"]["backend"] == "nccl"
    assert metrics["distributed"]["ranks_in_sync"] is True
    assert np.isfinite(metrics["test"]["rmse"])
