"""Gates that read a molecule's descriptor trajectory and score the K experts, and Top-k routing.

The gate sees the dense-filtration trajectory ``topo`` [B, T, D] (D descriptors at T radii,
see :mod:`mimoe_core.topology`) and returns K logits. :func:`top_k_routing` turns logits into
sparse weights alpha: the Top-k mask is applied to the logits before the softmax, so alpha
has exactly k non-zeros per molecule and sums to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import Unpack


class Routing(NamedTuple):
    """Routing weights of a batch.

    Attributes:
        alpha: [B, K] weights, k non-zeros per row summing to 1.
        selected: [B, K] bool, True for the k experts each molecule is routed to.
        probs: [B, K] full softmax of the logits (every expert), for the balancing loss.
    """

    alpha: Tensor
    selected: Tensor
    probs: Tensor


def top_k_routing(logits: Tensor, k: int, temperature: float = 1.0) -> Routing:
    r"""Sparse routing weights: Top-k mask on the logits, then a softmax.

    .. math::

        \alpha_{b,e} = \frac{\exp(l_{b,e}/\tau)\,[e \in \mathrm{TopK}_b]}
                            {\sum_{e' \in \mathrm{TopK}_b} \exp(l_{b,e'}/\tau)}

    Ties are broken by expert index (the lower index wins), so routing is deterministic.

    For k = 1 the formula gives alpha = 1 for the chosen expert whatever the logits, so the
    task loss would send no gradient to the gate. Following the Switch Transformer (Fedus et
    al. 2021), the chosen expert is weighted by its full-softmax probability p, normalized by
    p's value: alpha = p / stop_gradient(p). alpha is exactly 1 (contributions still sum to
    the prediction), and its gradient is that of log p, i.e. Switch's gradient divided by p
    (p >= 1/K for the chosen expert, so the factor is at most K).

    Args:
        logits: [B, K] gate scores.
        k: experts per molecule, 1 <= k <= K (k = K gives dense softmax weights).
        temperature: tau > 0, default 1.0.

    Returns:
        :class:`Routing` (alpha, selected, probs), each [B, K].

    Raises:
        ValueError: for k outside [1, K] or a non-positive temperature.

    Example:
        >>> r = top_k_routing(torch.tensor([[2.0, 0.0, 2.0, 1.0]]), k=2)
        >>> r.alpha
        tensor([[0.5000, 0.0000, 0.5000, 0.0000]])
    """
    num_experts = logits.size(-1)
    if not 1 <= k <= num_experts:
        raise ValueError(f"top_k must be in [1, {num_experts}], got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = logits / temperature
    # A stable sort on the negated scores keeps the lower index first among ties.
    order = torch.sort(-scaled.detach(), dim=-1, stable=True).indices[..., :k]
    selected = torch.zeros_like(scaled, dtype=torch.bool).scatter_(-1, order, True)
    probs = torch.softmax(scaled, dim=-1)
    if k == 1:
        # The masked softmax would be a constant 1 here, with no gradient for the gate. The
        # selected probability divided by its detached self is exactly 1 in value and has the
        # gradient of log p (Switch Transformer's p * expert, normalized by p).
        ratio = probs / probs.detach().clamp_min(torch.finfo(probs.dtype).tiny)
        return Routing(ratio.masked_fill(~selected, 0.0), selected, probs)
    masked = scaled.masked_fill(~selected, float("-inf"))
    return Routing(torch.softmax(masked, dim=-1), selected, probs)


def load_balancing_loss(
    probs: Tensor, selected: Tensor, load: Tensor | None = None, molecules: float | None = None
) -> Tensor:
    r"""Switch-Transformer load-balancing loss (Fedus et al. 2021, arXiv 2101.03961).

    .. math::

        L = K \sum_{e=1}^{K} f_e P_e, \qquad
        f_e = \frac{1}{B k} \sum_b [e \in \mathrm{TopK}_b], \qquad
        P_e = \frac{1}{B} \sum_b p_{b,e},

    with p the full softmax over all K experts. f (the load, not differentiable) and P (the
    importance) both sum to 1. The gradient flows through P, pushing probability away from
    overloaded experts. The paper's two terms (importance and load) are this one product.

    Range, for 1 <= k < K (for k = K every f_e = 1/K and L = 1 exactly):

    - L = 1 when routing is balanced (f_e = 1/K, or P_e = 1/K).
    - Upper bound K/k: f_e <= 1/k (a molecule picks an expert once), so L <= K/k, approached
      when every molecule goes to the same k experts and puts all its probability on them.
    - Lower bound 1/(kK): the top expert of a molecule has p >= 1/K and lies in its Top-k,
      so L >= sum_e g_e^2 / k >= 1/(kK), with g_e the share of molecules whose top expert is
      e. L can be below 1: for k = 1, a share 1 - (K-1)/(2K) of molecules with uniform p (the
      tie goes to expert 1) and the rest spread evenly over experts 2..K, each with p = 1 on
      its own expert, gives L = 1 - (K-1)/(4K) (0.875 for K = 2, 0.8 for K = 5). This is the
      smallest value we know; 1/(kK) is proven, not known to be attained.

    Under DDP a rank holds part of the global batch; with ``load`` (the Top-k counts summed
    over the ranks) and ``molecules`` (the global batch over the number of ranks) its value is
    K sum_e f_e (sum of its p_e) / molecules, and the mean over ranks of these values and of
    their gradients is L of the global batch and its gradient
    (:func:`~mimoe_core.training.distributed.global_balancing_loss`).

    Args:
        probs: [B, K] full softmax of the gate logits.
        selected: [B, K] bool Top-k mask.
        load: [K] Top-k counts per expert to take f from; default ``selected``'s own.
        molecules: what to divide the summed p by; default B (P is then the batch mean).

    Returns:
        Scalar tensor (0 for an empty batch).

    Example:
        >>> probs = torch.full((4, 2), 0.5)
        >>> load_balancing_loss(probs, torch.tensor([[True, False], [False, True]] * 2))
        tensor(1.)
    """
    if probs.size(0) == 0:
        return probs.sum()
    num_experts = probs.size(-1)
    if load is None:
        load = selected.sum(0)
    load = load.to(probs.dtype)
    load = load / load.sum().clamp_min(1.0)
    importance = probs.mean(0) if molecules is None else probs.sum(0) / molecules
    return num_experts * (load * importance).sum()


def radius_encoding(radii: Tensor, dim: int, scale: float = 10.0) -> Tensor:
    """Sinusoidal encoding of filtration radii in Å, [T] -> [T, dim] (radius as position).

    Frequencies as in the Transformer's positional encoding, with position ``scale * r``.
    """
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=radii.dtype) / max(half, 1))
    angle = scale * radii[:, None] * freq[None, :]
    enc = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)
    return F.pad(enc, (0, dim - enc.size(-1)))


class GateArgs(TypedDict, total=False):
    """The settings every gate takes (see :class:`Gate`); each subclass adds its own."""

    num_descriptors: int
    num_experts: int
    num_layers: int
    dropout: float
    noisy: bool


class Gate(nn.Module):
    """Base gate: ``encode`` the trajectory to a feature vector, a linear map to K logits.

    With ``noisy=True``, training adds Gaussian noise with a learned, input-dependent scale
    to the logits (noisy Top-k gating, Shazeer et al. 2017, arXiv 1701.06538); evaluation is
    noise-free. Subclasses pass the shared settings (:class:`GateArgs`) on as
    ``**shared: Unpack[GateArgs]``.

    Args:
        features: width of the encoded feature.
        num_descriptors: D, descriptors per radius, default 5.
        num_experts: K, default 5.
        num_layers: hidden (MLP) or encoder (Transformer) layers, default 2.
        dropout: default 0.0.
        noisy: noisy gating during training, default False.
    """

    def __init__(
        self,
        features: int,
        num_descriptors: int = 5,
        num_experts: int = 5,
        num_layers: int = 2,
        dropout: float = 0.0,
        noisy: bool = False,
    ) -> None:
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.num_descriptors, self.num_experts = int(num_descriptors), int(num_experts)
        self.num_layers, self.dropout = int(num_layers), float(dropout)
        self.noisy = bool(noisy)
        self.to_logits = nn.Linear(features, num_experts)
        self.noise_scale = nn.Linear(features, num_experts) if noisy else None

    def encode(self, topo: Tensor, num_atoms: Tensor | None = None) -> Tensor:
        """[B, T, D] trajectory (and [B] atom counts) -> [B, features]."""
        raise NotImplementedError

    def forward(self, topo: Tensor, num_atoms: Tensor | None = None) -> Tensor:
        """Logits [B, K] for trajectories ``topo`` [B, T, D].

        ``num_atoms`` [B] is what :class:`SizeGate` reads instead; the topology gates ignore it.
        """
        feat = self.encode(topo, num_atoms)
        logits = self.to_logits(feat)
        if self.noise_scale is not None and self.training:
            logits = logits + torch.randn_like(logits) * F.softplus(self.noise_scale(feat))
        return logits

    def _check(self, topo: Tensor, steps: int, descriptors: int) -> None:
        if topo.dim() != 3 or topo.shape[1:] != (steps, descriptors):
            raise ValueError(
                f"{type(self).__name__} expects topo of shape [B, {steps}, {descriptors}] "
                f"(T radii x D descriptors), got {tuple(topo.shape)}; the descriptor grid "
                "of the data must match the model's"
            )


class MLPGate(Gate):
    """MLP over the flattened trajectory: LayerNorm, hidden layers with SiLU, K logits.

    Args:
        num_radii: T, radii in the filtration grid.
        hidden_channels: width of the hidden layers, default 64.
        **shared: ``num_descriptors``, ``num_experts``, ``num_layers``, ``dropout``,
            ``noisy`` (see :class:`Gate`).
    """

    def __init__(
        self, num_radii: int, hidden_channels: int = 64, **shared: Unpack[GateArgs]
    ) -> None:
        super().__init__(hidden_channels, **shared)
        self.num_radii, self.hidden_channels = int(num_radii), int(hidden_channels)
        flat = self.num_radii * self.num_descriptors
        layers: list[nn.Module] = [nn.Flatten(), nn.LayerNorm(flat)]
        width = flat
        for _ in range(self.num_layers):
            layers += [nn.Linear(width, hidden_channels), nn.SiLU(), nn.Dropout(self.dropout)]
            width = hidden_channels
        self.mlp = nn.Sequential(*layers)

    def encode(self, topo: Tensor, num_atoms: Tensor | None = None) -> Tensor:
        """[B, T, D] -> [B, hidden_channels]; ``num_atoms`` is not read."""
        self._check(topo, self.num_radii, self.num_descriptors)
        return self.mlp(topo)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"T={self.num_radii}, D={self.num_descriptors}, K={self.num_experts}, "
            f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"noisy={self.noisy}"
        )


class TransformerGate(Gate):
    """A small Transformer encoder over the T radii, with the radius as position.

    Each radius r_t is a token: its D descriptors mapped to ``d_model`` plus a sinusoidal
    encoding of r_t in Å; pre-norm encoder layers, mean over tokens, K logits.

    Args:
        radii: the filtration grid in Å, [T].
        d_model: token width, default 32.
        num_heads: attention heads, default 4.
        **shared: ``num_descriptors``, ``num_experts``, ``num_layers``, ``dropout``,
            ``noisy`` (see :class:`Gate`).
    """

    def __init__(
        self,
        radii: Sequence[float],
        d_model: int = 32,
        num_heads: int = 4,
        **shared: Unpack[GateArgs],
    ) -> None:
        super().__init__(d_model, **shared)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        grid = torch.as_tensor(list(radii), dtype=torch.float32)
        self.register_buffer("radii", grid)
        self.d_model, self.num_heads = int(d_model), int(num_heads)
        self.embed = nn.Linear(self.num_descriptors, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, 2 * d_model, self.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, self.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def encode(self, topo: Tensor, num_atoms: Tensor | None = None) -> Tensor:
        """[B, T, D] -> [B, d_model]; ``num_atoms`` is not read."""
        self._check(topo, self.radii.numel(), self.num_descriptors)
        tokens = self.embed(topo) + radius_encoding(self.radii, self.d_model).to(topo.dtype)
        return self.norm(self.encoder(tokens).mean(dim=1))

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"T={self.radii.numel()}, D={self.num_descriptors}, K={self.num_experts}, "
            f"d_model={self.d_model}, num_heads={self.num_heads}, "
            f"num_layers={self.num_layers}, noisy={self.noisy}"
        )


class SizeGate(Gate):
    """An ablation: a gate that reads only the number of atoms, not the topology.

    Features log(n), sqrt(n)/4 and n/32 of the atom count n go through an MLP with SiLU to K
    logits; Top-k, softmax and the balancing loss are those of the topology gates. If this
    gate routes as well as :class:`MLPGate`, the topology gate is only reading size.

    Args:
        hidden_channels: width of the hidden layers, default 64.
        **shared: ``num_descriptors``, ``num_experts``, ``num_layers``, ``dropout``,
            ``noisy`` (see :class:`Gate`).
    """

    def __init__(self, hidden_channels: int = 64, **shared: Unpack[GateArgs]) -> None:
        super().__init__(hidden_channels, **shared)
        self.hidden_channels = int(hidden_channels)
        layers: list[nn.Module] = []
        width = 3
        for _ in range(self.num_layers):
            layers += [nn.Linear(width, hidden_channels), nn.SiLU(), nn.Dropout(self.dropout)]
            width = hidden_channels
        self.mlp = nn.Sequential(*layers)

    def encode(self, topo: Tensor, num_atoms: Tensor | None = None) -> Tensor:
        """[B] atom counts -> [B, hidden_channels] (``topo`` only gives the dtype)."""
        if num_atoms is None:
            raise ValueError("SizeGate needs the number of atoms of every molecule")
        n = num_atoms.to(topo.dtype).clamp(min=1).unsqueeze(-1)
        return self.mlp(torch.cat([n.log(), n.sqrt() / 4, n / 32], dim=-1))

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return (
            f"reads=num_atoms, K={self.num_experts}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}"
        )


class RandomGate(Gate):
    """An ablation: routing by a fixed pseudo-random hash of the molecule, learning nothing.

    Each molecule's descriptor trajectory, quantized to 1e-3 (so that round-off does not
    change it between devices), is hashed with integer arithmetic to one number in [0, 1)
    per expert; the logits are those numbers times 1e-3. Top-k then picks k experts that
    have nothing to do with the molecule's structure, the same ones in every epoch and at
    prediction time, each with weight 1/k (to within 1e-4). The gate has no parameters.

    Args:
        seed: chooses the hash, default 0.
        **shared: ``num_descriptors``, ``num_experts`` (see :class:`Gate`); the others are
            accepted and unused.
    """

    #: 2**31 - 1, a prime: every hash step stays inside int64 without overflow.
    _PRIME = 2_147_483_647

    def __init__(self, seed: int = 0, **shared: Unpack[GateArgs]) -> None:
        super().__init__(1, **shared)
        del self.to_logits
        self.noise_scale = None
        self.seed = int(seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.register_buffer(
            "multipliers", torch.randint(1, self._PRIME, (2, self.num_experts), generator=gen)
        )

    def forward(self, topo: Tensor, num_atoms: Tensor | None = None) -> Tensor:
        """Logits [B, K]: 1e-3 times a hash in [0, 1) of each molecule's quantized ``topo``."""
        codes = torch.round(topo.detach().double().flatten(1) * 1000).long() % self._PRIME
        h = torch.zeros(topo.size(0), dtype=torch.long, device=topo.device)
        for column in codes.unbind(dim=1):  # Horner's rule modulo the prime
            h = (h * 1_000_003 + column) % self._PRIME
        mult, shift = self.multipliers[0], self.multipliers[1]
        per_expert = (h.unsqueeze(-1) * mult + shift) % self._PRIME
        return (per_expert.to(topo.dtype) / self._PRIME) * 1e-3

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return f"reads=hash of the molecule, K={self.num_experts}, seed={self.seed}"
