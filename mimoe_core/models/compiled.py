"""Compiled message passing: ``torch.compile`` of the experts' blocks, an opt-in speed-up.

A training step spends most of its time in the experts' message-passing blocks
(:meth:`~mimoe_core.models.Expert.propagate`): gathers, small matrix products and
element-wise filters over every edge. :func:`compile_experts` compiles that method of every
expert (and of a shared trunk) with ``torch.compile(dynamic=True)``, which fuses the
element-wise work into few kernels. The routing, the dispatch of molecules to experts and
the readouts stay eager: they change shape with the routing, and cost little.

What does not change: the parameters, the state dict and its keys (checkpoints load into an
eager model and back), and the numbers up to rounding. Shapes are dynamic, so batches of
any size and routing that changes from step to step reuse the compiled graphs: one per grad
mode for most backbones, one per expert and grad mode where a backbone's code specializes
on its cutoff (DimeNet++). The compiled regions' recompile limit fits that many, so that no
expert falls back to eager unseen. The first steps pay the compilation (tens of seconds per
backbone on a CPU; inductor caches it on disk for later runs).
:func:`release_compiled` puts the eager methods back.

Measured in ``benchmarks/bench_compile.py`` (``benchmarks/results/compile_cpu.md``).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from mimoe_core.models._common import Expert

#: torch.compile backends: ``inductor`` generates fused kernels (C++ on the CPU, Triton on
#: CUDA); ``aot_eager`` traces forward and backward but runs them op by op (for tests).
BACKENDS = ("inductor", "aot_eager", "eager")

# The instance attribute that marks a compiled expert (its value: the backend).
_MARK = "_compiled_backend"


def compile_experts(model: nn.Module, backend: str = "inductor") -> int:
    """Compile :meth:`~mimoe_core.models.Expert.propagate` of every expert in ``model``.

    The compiled method shadows the class's on each expert instance; calling this again on
    a compiled model changes nothing.

    Args:
        model: any module holding :class:`~mimoe_core.models.Expert` modules (a
            :class:`~mimoe_core.models.MIMoE`, a scaled or a data-parallel wrapper of it).
        backend: one of :data:`BACKENDS`, default ``"inductor"``.

    Returns:
        How many experts (trunk included) were compiled by this call.

    Raises:
        ValueError: an unknown backend, or a model with no experts.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    experts = [m for m in model.modules() if isinstance(m, Expert)]
    if not experts:
        raise ValueError(f"{type(model).__name__} holds no experts to compile")
    # The experts of a class share one code object, hence one cache of compiled graphs,
    # which may hold a graph per expert and grad mode (see the module docstring).
    limit_option = _recompile_limit_option(max(8, 2 * len(experts) + 2))
    count = 0
    for expert in experts:
        if is_compiled(expert):
            continue
        expert.propagate = torch.compile(
            expert.propagate, dynamic=True, backend=backend, **limit_option
        )
        setattr(expert, _MARK, backend)
        count += 1
    return count


def _recompile_limit_option(limit: int) -> dict[str, int]:
    """``torch.compile``'s ``recompile_limit=limit`` where this torch takes it (2.13 does).

    An older torch (the GPU machine's 2.11 may be one) has only dynamo's process-wide limit
    per code object, which is raised to ``limit`` instead (never lowered): the same budget,
    since an expert class's compiled graphs share one code object either way.
    """
    if "recompile_limit" in inspect.signature(torch.compile).parameters:
        return {"recompile_limit": limit}
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), limit))
    return {}


def release_compiled(model: nn.Module) -> int:
    """Put the eager ``propagate`` back on every compiled expert of ``model``.

    Returns:
        How many experts were released.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, Expert) and is_compiled(module):
            del module.propagate
            delattr(module, _MARK)
            count += 1
    return count


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` is an expert whose blocks :func:`compile_experts` compiled."""
    return hasattr(module, _MARK)
