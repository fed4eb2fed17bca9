"""What ``pr.sweep`` returns: the best trial as a ``TrainResult``, plus the sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import SweepTrial
from ..trainers.base import TrainResult
from ..trainers.resources import TrialPlan

__all__ = ["SweepResult"]


@dataclass
class SweepResult(TrainResult):
    """The best trial of a sweep as a ``TrainResult`` (registered ``version``, ``metrics``,
    ``checkpoint``), plus the sweep: its ``trials`` as stored in the datastore, the best
    trial's ``params`` and id, the resource ``plan`` and Tune's own ``grid`` (``ResultGrid``).

    Example::

        result = pr.sweep(trainer, {"optimizer_kwargs__lr": tune.loguniform(1e-4, 1e-1)},
                          train=q, metric="valid/loss", mode="min", num_samples=8)
        result.version, result.params, result.metrics["valid/loss"]
        result.grid.get_dataframe()          # Tune's view of every trial
    """

    sweep: str = ""
    trial_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    trials: list[SweepTrial] = field(default_factory=list, repr=False)
    plan: TrialPlan | None = field(default=None, repr=False)
    grid: Any = field(default=None, repr=False)
