"""A sweep's live line: trials done/total, how many run, the best value so far and its
parameters. A Tune callback, so it runs on the driver (in Tune's controller loop) and
needs no Ray log line to reach the terminal."""

from __future__ import annotations

import math
from typing import Any

import ray.tune

from ..trainers.progress import LiveBar, format_value

__all__ = ["SweepProgress"]

# Room for the line's counts: the best trial's parameters are cut to fit after them.
_PARAMS_WIDTH = 60


class SweepProgress(ray.tune.Callback):
    """Show a sweep's progress on stderr while Tune runs its trials (``enabled=False``:
    nothing is shown). Call :meth:`close` when the sweep ends, however it ends."""

    def __init__(self, name: str, total: int, metric: str, mode: str, *, enabled: bool) -> None:
        self.name, self.total, self.metric, self.mode = name, total, metric, mode
        self.enabled = enabled
        self._bar: LiveBar | None = None
        self._running: set[str] = set()
        self._done = 0
        self._failed = 0
        self._best: float | None = None
        self._best_params: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune may pickle its run config (and so this callback); the live bar stays here.
        return {**self.__dict__, "_bar": None}

    # -- Tune's hooks (driver side) -----------------------------------------------------
    def setup(self, **info: Any) -> None:
        if self.enabled and self._bar is None:
            self._bar = LiveBar(f"sweep {self.name}", total=self.total, unit="trial")
            self._bar.__enter__()
            self._show()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._running.add(trial.trial_id)
        self._show()

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self._consider(result, trial)
        self._show()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._running.discard(trial.trial_id)
        self._done += 1
        self._consider(getattr(trial, "last_result", None) or {}, trial)
        self._show()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._running.discard(trial.trial_id)
        self._done += 1
        self._failed += 1
        self._show()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.close()

    # -- ours ---------------------------------------------------------------------------
    def close(self) -> None:
        """Leave the last line on the terminal and stop refreshing it."""
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.__exit__(None, None, None)

    def _consider(self, result: dict[str, Any], trial: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value):
            return
        better = (
            self._best is None
            or (self.mode == "min" and value < self._best)
            or (self.mode == "max" and value > self._best)
        )
        if better:
            self._best = float(value)
            self._best_params = dict(getattr(trial, "config", None) or {})

    def _show(self) -> None:
        if self._bar is None:
            return
        parts = [f"running {len(self._running)}"]
        if self._failed:
            parts.append(f"failed {self._failed}")
        if self._best is not None:
            shown = ", ".join(f"{k}={format_value(v)}" for k, v in self._best_params.items())
            if len(shown) > _PARAMS_WIDTH:
                shown = shown[: _PARAMS_WIDTH - 1] + "…"
            parts.append(f"best {self.metric}={format_value(self._best)} ({shown})")
        self._bar.show(self._done, postfix=", ".join(parts))
