"""Training objectives by name: the loss, the label dtype it needs, and how to predict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["OBJECTIVES", "Objective", "resolve_objective"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """A loss over (model output, label batch) and the label dtype it expects."""

    name: str
    loss: LossFn
    label_dtype: torch.dtype
    classification: bool = False


def _squeeze(output: torch.Tensor) -> torch.Tensor:
    return output.squeeze(-1) if output.dim() > 1 and output.shape[-1] == 1 else output


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(_squeeze(output), target)


def _mae(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(_squeeze(output), target)


def _huber(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(_squeeze(output), target)


def _bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(_squeeze(output), target)


def _cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target)


OBJECTIVES: dict[str, Objective] = {
    "mse": Objective("mse", _mse, torch.float32),
    "mae": Objective("mae", _mae, torch.float32),
    "huber": Objective("huber", _huber, torch.float32),
    "bce": Objective("bce", _bce, torch.float32, classification=True),
    "cross_entropy": Objective("cross_entropy", _cross_entropy, torch.int64, classification=True),
}


def resolve_objective(objective: str | LossFn) -> Objective:
    """The :class:`Objective` for a name in :data:`OBJECTIVES` or a ``loss(output, label)``."""
    if callable(objective):
        name = getattr(objective, "__name__", "custom")
        return Objective(name, objective, torch.float32)
    if isinstance(objective, str) and objective in OBJECTIVES:
        return OBJECTIVES[objective]
    raise ConfigError(
        f"objective={objective!r} is not known; use one of {sorted(OBJECTIVES)} or a function "
        "loss(output, label) -> scalar tensor"
    )
