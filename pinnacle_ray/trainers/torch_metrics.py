"""User metrics (``metric_values=``) over the whole validation set, on every worker alike.

Each worker holds the model outputs and targets of its own validation shard; they are
gathered from every worker (``all_gather_object``) and each metric is computed once over all
of them, so a metric that is not a mean (AUC, F1, a median) is exact with any number of
workers. The gathered arrays are the validation set's outputs: sized like ``valid``'s rows
times the model's outputs, which validation sets usually afford.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["compute_metric_values", "gather_arrays"]


def gather_arrays(parts: Sequence[np.ndarray]) -> np.ndarray | None:
    """This worker's ``parts`` concatenated with every other worker's, in rank order (None
    when no worker has any). Every worker must call it, in the same order."""
    import torch.distributed as dist

    mine = np.concatenate(parts) if parts else None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return mine
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    found = [a for a in everyone if a is not None and len(a)]
    return np.concatenate(found) if found else None


def compute_metric_values(
    metric_values: Mapping[str, Callable[..., Any]],
    predictions: np.ndarray | None,
    targets: np.ndarray | None,
) -> dict[str, float]:
    """``{"valid/<name>": float(fn(predictions, targets))}``; nothing without rows.
    ConfigError naming the metric when it does not return one number."""
    if predictions is None or targets is None or not len(targets):
        return {}
    out: dict[str, float] = {}
    for name, fn in metric_values.items():
        value = fn(predictions, targets)
        try:
            number = float(np.asarray(value).item())
        except (TypeError, ValueError):
            raise ConfigError(
                f"metric_values[{name!r}] returned {type(value).__name__} {value!r:.80}, not "
                "one number; return a float"
            ) from None
        out[f"valid/{name}"] = number if math.isfinite(number) else float("nan")
    return out
