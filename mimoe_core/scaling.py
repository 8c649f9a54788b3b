"""Target scaling that travels with the model: a fitted scaler and its in-model unscaling.

Training standardizes regression targets with the training split's mean and standard
deviation. The model carries them as buffers (chemprop v2's ``UnscaleTransform``,
TorchMD-Net's ``mean``/``std``): in train mode it returns standardized outputs, the loss's
units; in eval mode it returns the original units, so a trained model needs no side object
to be used.

Unscaling is affine, ``u(y) = y * std + mean``, and the routing weights of a molecule sum to
1, so the contributions stay exact in the original units::

    sum_e alpha_e * u(expert_e) = u(sum_e alpha_e * expert_e) = u(y)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mimoe_core.models import MIMoE, MoEOutput


@dataclass
class TargetScaler:
    """Per-target ``(y - mean) / std``; identity for classification.

    Attributes:
        mean: [num_targets] means of the present training labels.
        std: [num_targets] standard deviations (1 where a target is constant or has < 2
            labels, so a constant target does not divide by zero).
    """

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, targets: np.ndarray, task: str) -> TargetScaler:
        """Fit on training labels [num_molecules, num_targets] with NaN for missing ones.

        Example:
            >>> s = TargetScaler.fit(np.array([[1.0, np.nan], [3.0, 5.0]]), "regression")
            >>> s.mean, s.std
            ([2.0, 5.0], [1.0, 1.0])
        """
        num = targets.shape[1]
        if task == "classification":
            return cls([0.0] * num, [1.0] * num)
        mean, std = [], []
        for col in targets.T:
            present = col[~np.isnan(col)]
            if present.size == 0:
                raise ValueError("a target has no label in the training split")
            mean.append(float(present.mean()))
            spread = float(present.std()) if present.size > 1 else 0.0
            std.append(spread if spread > 0 else 1.0)
        return cls(mean, std)

    @classmethod
    def identity(cls, num_targets: int) -> TargetScaler:
        """Mean 0, std 1: outputs are already in the original units."""
        return cls([0.0] * num_targets, [1.0] * num_targets)

    def transform(self, y: Tensor) -> Tensor:
        """Original units -> standardized, [B, num_targets]."""
        return (y - self._t(self.mean, y)) / self._t(self.std, y)

    def inverse(self, y: Tensor) -> Tensor:
        """Standardized -> original units, [B, num_targets] (or [B, K, num_targets])."""
        return y * self._t(self.std, y) + self._t(self.mean, y)

    @staticmethod
    def _t(values: list[float], like: Tensor) -> Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def to_dict(self) -> dict:
        """Plain dict for checkpoints."""
        return {"mean": list(self.mean), "std": list(self.std)}


class UnscaleTransform(nn.Module):
    """``y * std + mean`` in eval mode, identity in train mode (chemprop v2's shape).

    ``mean`` and ``std`` are float64 buffers, so they are saved in the state dict, follow
    ``.to(device)`` and round-trip through a checkpoint exactly; they are cast to the input's
    dtype where used.

    Args:
        mean: [num_targets] training means (the regression baseline).
        std: [num_targets] training standard deviations.

    Example:
        >>> t = UnscaleTransform([1.0], [2.0]).eval()
        >>> t(torch.tensor([[0.5]]))
        tensor([[2.]])
        >>> t.train()(torch.tensor([[0.5]]))
        tensor([[0.5000]])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} targets, std {len(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float64))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float64))

    @classmethod
    def from_scaler(cls, scaler: TargetScaler) -> UnscaleTransform:
        """The transform holding ``scaler``'s mean and std."""
        return cls(scaler.mean, scaler.std)

    def to_scaler(self) -> TargetScaler:
        """The buffers as a plain :class:`TargetScaler` (exact: float64 -> Python float)."""
        return TargetScaler(self.mean.tolist(), self.std.tolist())

    def forward(self, y: Tensor) -> Tensor:
        """[..., num_targets]: unchanged in train mode, original units in eval mode."""
        return y if self.training else self.inverse(y)

    def inverse(self, y: Tensor) -> Tensor:
        """Standardized -> original units, whatever the mode."""
        return y * self.std.to(y.dtype) + self.mean.to(y.dtype)

    def transform(self, y: Tensor) -> Tensor:
        """Original units -> standardized (training targets), whatever the mode."""
        return (y - self.mean.to(y.dtype)) / self.std.to(y.dtype)

    def extra_repr(self) -> str:
        """Key settings shown by ``repr``."""
        return f"num_targets={self.mean.numel()}"


class ScaledMIMoE(nn.Module):
    """A :class:`MIMoE` with its target scaling: standardized in train mode, original units in eval.

    ``y`` and ``expert_predictions`` of the returned :class:`MoEOutput` go through
    :class:`UnscaleTransform`; ``alpha``, ``selected``, ``logits`` and ``aux_loss`` are the
    inner model's. Experts that did not run keep zero outputs, so
    :meth:`MoEOutput.contributions` still sum to ``y``, in either unit.

    The state dict is the inner model's, keys unchanged, plus ``output_transform.mean`` and
    ``output_transform.std`` (:meth:`state_dict`, :meth:`load_state_dict`), so checkpoints
    keep their format. Attributes the wrapper lacks (``config``, ``cutoffs``,
    ``num_experts``...) are read from the inner model.

    Args:
        moe: the mixture of experts.
        scaler: the training split's target scaling; identity when None.
    """

    def __init__(self, moe: MIMoE, scaler: TargetScaler | None = None) -> None:
        super().__init__()
        scaler = scaler or TargetScaler.identity(moe.out_channels)
        if len(scaler.mean) != moe.out_channels:
            raise ValueError(
                f"the scaler has {len(scaler.mean)} targets, the model {moe.out_channels} outputs"
            )
        self.moe = moe
        self.output_transform = UnscaleTransform.from_scaler(scaler)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or "moe" not in self.__dict__.get("_modules", {}):
                raise
            return getattr(self._modules["moe"], name)

    @property
    def scaler(self) -> TargetScaler:
        """The scaling the buffers hold, as a plain :class:`TargetScaler`."""
        return self.output_transform.to_scaler()

    def reset_parameters(self) -> None:
        """Re-initialize the inner model's weights; the target scaling is kept."""
        self.moe.reset_parameters()

    def forward(self, *args, compute_all: bool = False, **kwargs) -> MoEOutput:
        """:meth:`MIMoE.forward` with the outputs unscaled in eval mode."""
        return self._unscale(self.moe(*args, compute_all=compute_all, **kwargs), compute_all)

    def forward_batch(self, data, compute_all: bool = False) -> MoEOutput:
        """:meth:`MIMoE.forward_batch` with the outputs unscaled in eval mode."""
        return self._unscale(self.moe.forward_batch(data, compute_all=compute_all), compute_all)

    def _unscale(self, out: MoEOutput, compute_all: bool) -> MoEOutput:
        if self.training:
            return out
        per_expert = self.output_transform(out.expert_predictions)
        if not compute_all:  # experts that did not run stay zero, as in MoEOutput
            per_expert = per_expert * out.selected.unsqueeze(-1)
        log_var = out.log_var
        if log_var is not None:  # var(std * z + mean) = std^2 var(z)
            log_var = log_var + 2 * torch.log(self.output_transform.std.to(log_var.dtype))
        return out._replace(
            y=self.output_transform(out.y), expert_predictions=per_expert, log_var=log_var
        )

    def state_dict(self, *args, **kwargs) -> dict:
        """The inner model's state dict, keys unchanged, plus ``output_transform.*``."""
        if args or kwargs.get("destination") is not None:
            return super().state_dict(*args, **kwargs)  # nested in another module: as usual
        flat = super().state_dict(**kwargs)
        prefix = kwargs.get("prefix", "")
        inner = prefix + "moe."
        return type(flat)(
            (prefix + k[len(inner) :] if k.startswith(inner) else k, v) for k, v in flat.items()
        )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a flat state dict; without ``output_transform.*`` keys the buffers are kept.

        Checkpoints written before the scaling moved into the model have no such keys: their
        buffers are filled from the payload's ``scaler`` (see :mod:`mimoe_core.trained`).
        """
        own = {k: v for k, v in state_dict.items() if k.startswith("output_transform.")}
        inner = {k: v for k, v in state_dict.items() if not k.startswith("output_transform.")}
        result = self.moe.load_state_dict(inner, strict=strict, assign=assign)
        if own:
            self.output_transform.load_state_dict(
                {k.removeprefix("output_transform."): v for k, v in own.items()}, strict=strict
            )
        return result
