"""Progress while training: one line per Ray Train report with the step and a metric.

A Ray Train ``UserCallback`` runs in the run's controller actor; Ray forwards what it prints
to the driver's console (and, in a Ray job, to the job's logs), so ``pinnacle-ray train``
shows progress the same way on a laptop and on a cluster.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.train import UserCallback

__all__ = ["ProgressCallback", "format_progress"]

_STEP_KEYS = ("step", "round", "epoch")


def format_progress(name: str, metrics: dict[str, Any], listen: str | None = None) -> str:
    """``name: step 120 epoch 2 valid/loss=0.1234`` from one report's metrics."""
    parts = [name + ":"]
    for key in _STEP_KEYS:
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{key} {metrics[key]}")
    shown = [listen] if listen and listen in metrics else []
    shown += [k for k in sorted(metrics) if k not in _STEP_KEYS and k not in shown]
    for key in shown[:3]:
        value = metrics[key]
        if isinstance(value, float) and math.isfinite(value):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{key}={value}")
    return " ".join(parts)


class ProgressCallback(UserCallback):
    """Print a progress line after each report, at most every ``every_s`` seconds."""

    def __init__(self, name: str, listen: str | None = None, every_s: float = 1.0) -> None:
        self.name = name
        self.listen = listen
        self.every_s = every_s
        self._last = 0.0

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        now = time.monotonic()
        if not metrics or now - self._last < self.every_s:
            return
        self._last = now
        print("[progress] " + format_progress(self.name, dict(metrics[0]), self.listen), flush=True)
