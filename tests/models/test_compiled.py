"""Compiled message passing (``mimoe_core.models.compiled``): same numbers, same weights.

The default tests compile with ``aot_eager`` (dynamo traces forward and backward, then runs
the traced ops one by one: what the compiled graph computes, without inductor's build
time) or ``eager`` (dynamo alone, for DimeNet++, whose bases take long to trace). The slow
tests use inductor, the backend ``--compile`` uses.
"""

from __future__ import annotations

import logging

import pytest
import torch
from molecule_factory import Molecules

from mimoe_core.models import EXPERTS, create_model
from mimoe_core.models.compiled import (
    _recompile_limit_option,
    compile_experts,
    is_compiled,
    release_compiled,
)
from mimoe_core.models.gate import MLPGate

TRACED = {"et": "aot_eager", "painn": "aot_eager", "schnet": "aot_eager",
          "visnet": "aot_eager", "dimenet++": "eager"}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Compiled graphs are cached per code object: each test starts without them."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _model(backbone: str, **overrides):
    config = {
        "backbone": backbone,
        "expert": {"hidden_channels": 16, "num_layers": 1},
        "gate": {"name": "mlp", "hidden_channels": 16},
        **overrides,
    }
    torch.manual_seed(0)
    return create_model(config)


def _outputs_and_gradients(model, mols: Molecules, grad: bool = True):
    model.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(grad):
        out = model(mols.z, mols.pos, mols.batch, mols.topo)
    if not grad:
        return out.y, {}
    (out.y.pow(2).sum() + out.aux_loss).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.y.detach(), grads


def _assert_same_as_eager(backbone: str, backend: str, overrides=None, rtol=0.0, atol=0.0):
    eager, compiled = _model(backbone, **(overrides or {})), _model(backbone, **(overrides or {}))
    with_trunk = compiled.num_experts + (compiled.trunk is not None)
    assert compile_experts(compiled, backend=backend) == with_trunk
    # Batches of other sizes (and so other routings): the dynamic graph serves them all.
    for seed, sizes in enumerate([[6, 11, 5, 9], [13, 8, 7], [4, 12, 9, 10, 5]]):
        mols = Molecules(sizes, dtype=torch.float32, seed=seed)
        y_eager, g_eager = _outputs_and_gradients(eager, mols)
        y_compiled, g_compiled = _outputs_and_gradients(compiled, mols)
        torch.testing.assert_close(y_compiled, y_eager, rtol=rtol, atol=atol)
        assert g_eager and g_eager.keys() <= g_compiled.keys()
        # A traced backward gives a parameter that cannot reach the output (ViSNet's last
        # s_proj) a zero gradient where eager leaves None: the same update, as Adam's moments
        # of such a parameter stay zero.
        assert all(not g_compiled[n].any() for n in g_compiled.keys() - g_eager.keys())
        for name in g_eager:
            torch.testing.assert_close(g_compiled[name], g_eager[name], rtol=rtol, atol=atol)
    y_eager, _ = _outputs_and_gradients(eager.eval(), mols, grad=False)
    y_compiled, _ = _outputs_and_gradients(compiled.eval(), mols, grad=False)
    torch.testing.assert_close(y_compiled, y_eager, rtol=rtol, atol=atol)


@pytest.mark.parametrize("backbone", sorted(EXPERTS))
def test_compiled_experts_give_the_eager_outputs_and_gradients(backbone):
    # K = 3 for DimeNet++: it compiles a graph per expert (slow to trace); K = 5 below.
    overrides = {"cutoffs": [2.0, 3.0, 4.0]} if backbone == "dimenet++" else None
    _assert_same_as_eager(backbone, TRACED[backbone], overrides)


def test_a_shared_trunk_and_learnable_cutoffs_are_compiled_too():
    overrides = {
        "shared_trunk": {"enabled": True, "layers": 1},
        "expert": {"hidden_channels": 16, "num_layers": 2},
        "learnable_cutoffs": {"enabled": True},
    }
    model = _model("painn", **overrides)
    assert compile_experts(model, backend="aot_eager") == model.num_experts + 1
    assert is_compiled(model.trunk)
    # The traced backward of the edge ramps sums in another order: equal to rounding.
    _assert_same_as_eager("painn", "aot_eager", overrides, rtol=1e-5, atol=1e-8)


def test_compiling_keeps_the_weights_and_release_restores_the_eager_methods():
    model = _model("schnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert compile_experts(model, backend="eager") == 5
    assert all(is_compiled(e) for e in model.experts)
    assert compile_experts(model, backend="eager") == 0  # already compiled: nothing new
    state = model.state_dict()
    assert state.keys() == before.keys()
    assert all(torch.equal(state[k], before[k]) for k in before)
    fresh = _model("schnet")
    fresh.load_state_dict(state)  # a compiled model's checkpoint loads into an eager one
    assert release_compiled(model) == 5
    assert not any(is_compiled(e) for e in model.experts)
    assert all("propagate" not in vars(e) for e in model.experts)
    assert release_compiled(model) == 0


def test_unknown_backends_and_models_without_experts_are_refused():
    with pytest.raises(ValueError, match="backend must be one of"):
        compile_experts(_model("schnet"), backend="tensorrt")
    with pytest.raises(ValueError, match="holds no experts"):
        compile_experts(MLPGate(num_radii=41, num_experts=3))


def test_this_torch_takes_the_limit_per_compiled_region():
    assert _recompile_limit_option(12) == {"recompile_limit": 12}


def test_an_older_torch_without_the_option_gets_the_process_wide_limit(monkeypatch):
    """A torch.compile without ``recompile_limit=`` (the GPU machine's torch may have
    none): the same budget through dynamo's process-wide limit, raised, never lowered."""
    real = torch.compile

    def older_compile(model, *, dynamic=None, backend="inductor"):
        return real(model, dynamic=dynamic, backend=backend)

    monkeypatch.setattr(torch, "compile", older_compile)
    before = torch._dynamo.config.recompile_limit
    # config.patch, not monkeypatch: monkeypatch's undo hides the setting of torch's config
    # module for the rest of the process (later compiles then fail on the missing limit).
    with torch._dynamo.config.patch(recompile_limit=8):
        _assert_same_as_eager("schnet", "aot_eager")
        assert torch._dynamo.config.recompile_limit == 2 * 5 + 2  # K = 5
    with torch._dynamo.config.patch(recompile_limit=64):
        compile_experts(_model("schnet"), backend="aot_eager")
        assert torch._dynamo.config.recompile_limit == 64
    assert torch._dynamo.config.recompile_limit == before  # restored for the later tests


@pytest.mark.slow
def test_every_expert_stays_compiled_when_each_needs_its_own_graph(caplog):
    """Traced with AOT autograd (as inductor does), DimeNet++ specializes on each expert's
    cutoff: a graph per expert and grad mode, 10 with K = 5, more than torch's default
    limit of 8; none may fall back to eager, and all give the eager numbers."""
    caplog.set_level(logging.WARNING, logger="torch._dynamo")
    # The traced backward sums some gradients in another order: equal to rounding (seen:
    # one element of 1,520 off by 4e-7 relative).
    _assert_same_as_eager("dimenet++", "aot_eager", {"variant": "dense"}, rtol=1e-5, atol=1e-8)
    assert not [r for r in caplog.records if "recompile_limit" in r.getMessage()]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(EXPERTS))
def test_inductor_compiled_experts_match_eager_to_rounding(backbone):
    _assert_same_as_eager(backbone, "inductor", rtol=1e-4, atol=1e-5)
