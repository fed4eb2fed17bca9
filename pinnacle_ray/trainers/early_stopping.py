"""Early stopping: track the listened metric, say when it stopped improving."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["EarlyStopping"]


@dataclass
class EarlyStopping:
    """Stop after ``patience`` validations without improving ``mode`` ("min"/"max").

    ``patience=None`` never stops; the best value is still tracked for the "best" handle.
    """

    mode: str = "min"
    patience: int | None = None
    best: float | None = None
    bad: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ConfigError(
                f"no_improve_then_stop must be a positive integer or None, got {self.patience!r}"
            )

    def improved(self, value: float) -> bool:
        """Record ``value``; True when it is the best so far (NaN never is)."""
        if value is None or math.isnan(value):
            self.bad += 1
            return False
        better = self.best is None or (
            value < self.best if self.mode == "min" else value > self.best
        )
        if better:
            self.best, self.bad = float(value), 0
        else:
            self.bad += 1
        return better

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` validations in a row did not improve."""
        return self.patience is not None and self.bad >= self.patience

    def state(self) -> dict[str, Any]:
        """JSON-able state, saved in checkpoints so a restarted worker keeps counting."""
        return asdict(self)
