"""Learnable expert cutoffs (issue 18, question 1): ordered, bounded, reached by gradients.

The K cutoffs are parametrized by K + 1 positive gaps that fill the interval [lower, upper]::

    g = softplus(u)                      u: K + 1 free parameters
    c_e = lower + (upper - lower) * (g_0 + ... + g_e) / (g_0 + ... + g_K)

so ``lower < c_1 < ... < c_K < upper`` holds for every value of u: the optimizer can never
disorder the experts or push one outside the bounds, and no clamping hides a bad step.
At initialization the gaps are those of the configured cutoffs, so the model starts where
a fixed-cutoff model sits.

Expert e weights every edge of length d by :func:`edge_ramp` of (c_e - d): 1 for edges
shorter than c_e - ramp, 0 from c_e on, a half cosine in between. The weight is a smooth
function of c_e, so the loss has a gradient in the cutoff (from the edges inside the ramp),
and edges at or beyond c_e carry weight 0 with zero gradient, so dropping them (the sparse
dispatch does) changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def edge_ramp(dist: Tensor, cutoff: Tensor, ramp: float) -> Tensor:
    r"""Edge weights :math:`w(c - d)` that fall from 1 to 0 over the last ``ramp`` Å before c.

    .. math:: w = \tfrac12\,(1 - \cos(\pi x)), \quad x = \mathrm{clip}((c - d) / r, 0, 1)

    Args:
        dist: edge lengths d in Å, [E].
        cutoff: the cutoff c in Å, a 0-d tensor (gradients flow into it).
        ramp: the width r > 0 in Å.

    Returns:
        [E] weights in [0, 1]: 1 for d <= c - r, 0 for d >= c; continuous with a continuous
        first derivative in both d and c.

    Example:
        >>> edge_ramp(torch.tensor([0.5, 1.75, 2.0, 3.0]), torch.tensor(2.0), 0.5)
        tensor([1.0000, 0.5000, 0.0000, 0.0000])
    """
    x = ((cutoff - dist) / ramp).clamp(0.0, 1.0)
    return 0.5 * (1.0 - torch.cos(math.pi * x))


def _inverse_softplus(x: Tensor) -> Tensor:
    """The inverse of softplus, for x > 0 (stable for large x)."""
    return x + torch.log(-torch.expm1(-x))


class LearnableCutoffs(nn.Module):
    """K strictly increasing cutoffs inside (lower, upper), learned with the model.

    Args:
        initial: the K starting cutoffs in Å, strictly increasing, strictly inside the bounds.
        lower: lower bound in Å, > 0.
        upper: upper bound in Å; the neighbour search of the mixture runs at this radius.
        ramp: width in Å of each expert's edge ramp (see :func:`edge_ramp`), > 0.

    Raises:
        ValueError: for bounds that do not hold the initial cutoffs strictly, unordered
            cutoffs, or a ramp that is not positive.

    Example:
        >>> cutoffs = LearnableCutoffs([2.0, 3.0, 4.0], lower=1.0, upper=6.0, ramp=0.5)
        >>> [round(c, 4) for c in cutoffs().tolist()]
        [2.0, 3.0, 4.0]
    """

    def __init__(self, initial: Sequence[float], lower: float, upper: float, ramp: float) -> None:
        super().__init__()
        initial = [float(c) for c in initial]
        lower, upper, ramp = float(lower), float(upper), float(ramp)
        check_learnable_cutoffs(initial, lower, upper, ramp)
        self.lower, self.upper, self.ramp = lower, upper, ramp
        gaps = torch.diff(torch.tensor([lower, *initial, upper], dtype=torch.float64))
        # float64 arithmetic, so the starting cutoffs match the configured ones to ~1e-7 Å
        self.raw_gaps = nn.Parameter(_inverse_softplus(gaps).float())

    @property
    def num_experts(self) -> int:
        """K, the number of cutoffs."""
        return self.raw_gaps.numel() - 1

    def forward(self) -> Tensor:
        """The K cutoffs in Å, [K], differentiable in :attr:`raw_gaps`."""
        gaps = nn.functional.softplus(self.raw_gaps)
        fraction = torch.cumsum(gaps, 0)[:-1] / gaps.sum()
        return self.lower + (self.upper - self.lower) * fraction

    def values(self) -> list[float]:
        """The current cutoffs as plain floats (what reports and ``metrics.json`` record)."""
        with torch.no_grad():
            return [float(c) for c in self().double()]

    def extra_repr(self) -> str:
        """Bounds, ramp and the current values."""
        shown = ", ".join(f"{c:.3f}" for c in self.values())
        return f"bounds=({self.lower}, {self.upper}), ramp={self.ramp}, cutoffs=[{shown}]"


def check_learnable_cutoffs(
    initial: Sequence[float], lower: float, upper: float, ramp: float
) -> None:
    """Refuse settings that cannot start a learnable-cutoff model, saying which and why.

    Raises:
        ValueError: see :class:`LearnableCutoffs`.
    """
    if not all(math.isfinite(v) for v in (lower, upper, ramp)):
        raise ValueError(f"learnable cutoffs need finite bounds and ramp, got {lower, upper, ramp}")
    if not 0 < lower < upper:
        raise ValueError(f"learnable cutoffs need 0 < lower < upper, got {lower} and {upper} Å")
    if not ramp > 0:
        raise ValueError(f"the learnable cutoffs' ramp must be > 0 Å, got {ramp}")
    if any(b <= a for a, b in zip(initial, initial[1:], strict=False)):
        raise ValueError(f"cutoffs must be strictly increasing, got {list(initial)}")
    if not initial or not lower < initial[0] or not initial[-1] < upper:
        raise ValueError(
            f"the starting cutoffs {list(initial)} must lie strictly inside the learnable "
            f"cutoffs' bounds ({lower}, {upper}) Å"
        )
