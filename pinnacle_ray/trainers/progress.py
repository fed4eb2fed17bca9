"""Live progress lines on the driver's terminal (rendered with tqdm, written to stderr).

On by default when stderr is a terminal, off otherwise; ``progress=True``/``False`` on
``fit``, ``pr.sweep`` and ``pr.predict`` forces it either way. A display that is off
creates nothing and writes nothing.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any, TextIO

from ..errors import ConfigError
from .report_stream import Phase, Report, ReportStream

__all__ = [
    "FitProgress",
    "LiveBar",
    "PhaseProgress",
    "TaskPhases",
    "format_value",
    "progress_on",
]


def progress_on(progress: bool | None) -> bool:
    """Whether to show progress: ``progress`` when given, else whether stderr is a TTY."""
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stderr
            return False
    if not isinstance(progress, bool):
        raise ConfigError(
            f"progress must be True, False or None (on when stderr is a terminal), got {progress!r}"
        )
    return progress


def format_value(value: Any) -> str:
    """A metric value as a short string (4 significant digits for floats)."""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _sized(file: Any) -> bool:
    try:
        size = os.get_terminal_size(file.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


class LiveBar:
    """A tqdm bar on stderr that also refreshes once a second between updates, so its
    elapsed time moves while nothing is reported (e.g. while Ray starts the workers).

    Used as a context manager; ``enabled=False`` makes every method a no-op.
    """

    def __init__(
        self,
        desc: str,
        *,
        total: float | None = None,
        unit: str = "it",
        enabled: bool = True,
        file: TextIO | None = None,
        tick_s: float = 1.0,
    ) -> None:
        self.enabled = enabled
        self.desc, self.total, self.unit = desc, total, unit
        self.file = file
        self.tick_s = tick_s
        self.bar: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> LiveBar:
        if not self.enabled:
            return self
        from tqdm.auto import tqdm

        file = self.file or sys.stderr
        # tqdm draws nothing on a terminal that reports no size (a fresh pty, some CI
        # runners): give it 100 columns and 24 rows there instead.
        sized = _sized(file)
        self.bar = tqdm(
            desc=self.desc,
            total=self.total,
            unit=self.unit,
            file=file,
            dynamic_ncols=sized,
            ncols=None if sized else 100,
            nrows=None if sized else 24,
            leave=True,
            mininterval=0.2,
        )
        self._ticker = threading.Thread(target=self._tick, name="pinnacle-progress", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def show(
        self,
        n: float | None = None,
        *,
        total: float | None = None,
        desc: str | None = None,
        postfix: str | None = None,
    ) -> None:
        """Move the bar to ``n`` (of ``total``), with ``desc`` before it and ``postfix``
        after it, and redraw."""
        bar = self.bar
        if bar is None:
            return
        if total is not None and total != bar.total:
            bar.total = total
        if desc is not None:
            bar.set_description_str(desc, refresh=False)
        if postfix is not None:
            bar.set_postfix_str(postfix, refresh=False)
        if n is not None and n != bar.n:
            bar.update(n - bar.n)  # update() keeps tqdm's rate (and so its ETA) right
        bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            bar = self.bar
            if bar is not None:
                bar.refresh()


class FitProgress(LiveBar):
    """A fit's live line: epoch i/N, step (of the total when known), rows/s, the listened
    metric, elapsed and ETA. Subscribe it to the fit's report stream.

    ``steps`` is the run's total steps (XGBoost: rounds), ``epochs`` its epochs, either
    None when unknown; the bar counts steps when their total is known, else epochs.
    """

    def __init__(
        self,
        name: str,
        *,
        listen: str | None = None,
        steps: int | None = None,
        epochs: int | float | None = None,
        unit: str = "step",
        enabled: bool = True,
        file: TextIO | None = None,
    ) -> None:
        super().__init__(name, enabled=enabled, file=file)
        self.name, self.listen, self.step_unit = name, listen, unit
        self.expect(steps=steps, epochs=epochs)
        self._reports = 0
        self._rows: tuple[float, float, Any] | None = None  # (rows, time, epoch) last seen
        self._rate: float | None = None

    def expect(self, *, steps: int | None = None, epochs: float | None = None) -> None:
        """Set the run's totals once they are known (before the line is shown)."""
        self.steps, self.epochs = steps, epochs
        self._by_steps = bool(steps) or not epochs
        self.total = steps if self._by_steps else epochs
        self.unit = self.step_unit if self._by_steps else "epoch"

    def __enter__(self) -> FitProgress:
        super().__enter__()
        self.show(postfix="starting Ray Train workers")
        return self

    def __call__(self, report: Report) -> None:
        """Show ``report`` (the stream's subscriber)."""
        self._reports += 1
        metrics = report.metrics
        self._track_rows(metrics, report.time)
        parts = []
        if report.epoch is not None:
            done = report.epoch + 1 if metrics.get("epoch_done") else report.epoch
            shown = report.epoch + 1  # the epoch under way, counted from 1
            if self.epochs:
                shown = min(shown, math.ceil(self.epochs))
                parts.append(f"epoch {shown}/{math.ceil(self.epochs)}")
            else:
                parts.append(f"epoch {shown}")
        else:
            done = None
        if report.step is not None and not self._by_steps:
            parts.append(f"{self.step_unit} {report.step}")
        if self._rate is not None:
            parts.append(f"rows/s={self._rate:,.0f}")
        listen = self.listen if self.listen in metrics else self._first_metric(metrics)
        if listen is not None:
            parts.append(f"{listen}={format_value(metrics[listen])}")
        if self._by_steps:
            n = report.step if report.step is not None else self._reports
        else:
            n = done if done is not None else None
        self.show(n, postfix=", ".join(parts))

    def _track_rows(self, metrics: dict[str, Any], at: float) -> None:
        """rows/s from the rows the run says it read (``data/rows_read``, cumulative) or
        trained on this epoch (``train/rows``, the managed torch loop)."""
        rows = metrics.get("data/rows_read")
        cumulative = rows is not None
        if rows is None:
            rows = metrics.get("train/rows")
        if not isinstance(rows, (int, float)) or isinstance(rows, bool):
            return
        epoch = metrics.get("epoch")
        last, self._rows = self._rows, (float(rows), at, epoch)
        if last is None or at <= last[1]:
            return
        delta = float(rows) - last[0]
        if not cumulative and epoch != last[2]:  # a new epoch counts its rows from 0
            delta = float(rows)
        if delta > 0:
            self._rate = delta / (at - last[1])

    @staticmethod
    def _first_metric(metrics: dict[str, Any]) -> str | None:
        for prefix in ("valid/", "train/"):
            for key in sorted(metrics):
                value = metrics[key]
                if key.startswith(prefix) and key != "train/rows" and isinstance(value, float):
                    return key
        return None


class PhaseProgress(LiveBar):
    """A line naming the phase under way (e.g. reading, fitting, scoring) and how many of
    them are done, with the elapsed time."""

    def __init__(
        self,
        name: str,
        phases: tuple[str, ...],
        *,
        enabled: bool = True,
        file: TextIO | None = None,
    ) -> None:
        super().__init__(name, total=len(phases), unit="phase", enabled=enabled, file=file)
        self.name, self.phases = name, phases
        self._started = time.monotonic()

    def phase(self, name: str) -> None:
        """Say that phase ``name`` has started (the phases before it are done)."""
        done = self.phases.index(name) if name in self.phases else None
        if done is not None and self.bar is not None and done < self.bar.n:
            return  # a late note from a task, after a later phase (or the end) was shown
        self.show(done, postfix=name)

    def finish(self, postfix: str | None = None) -> None:
        """Mark every phase done."""
        self.show(len(self.phases), postfix=postfix or "done")


class TaskPhases:
    """A :class:`PhaseProgress` line for work that runs partly in a Ray task: the driver
    calls :meth:`phase`, the task calls the picklable :meth:`notifier` (delivered through
    a :class:`ReportStream`). When off, nothing is created and ``notifier()`` is None.

    Example::

        with TaskPhases("house-price", ("reading", "fitting", "scoring"), enabled=True) as p:
            p.phase("reading")
            ...
            ray.get(task.remote(..., note=p.notifier()))   # the task calls note("scoring")
            p.finish()
    """

    def __init__(self, name: str, phases: tuple[str, ...], *, enabled: bool) -> None:
        self.display = PhaseProgress(name, phases, enabled=enabled)
        self.stream: ReportStream | None = None

    def __enter__(self) -> TaskPhases:
        if self.display.enabled:
            self.display.__enter__()
            self.stream = ReportStream(interval_s=0.25)
            self.stream.subscribe_phases(self._announced)
            self.stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.stream is not None:
                self.stream.__exit__(*exc)
        finally:
            self.display.__exit__(*exc)

    def phase(self, name: str) -> None:
        """Phase ``name`` started (on the driver)."""
        self.display.phase(name)

    def notifier(self) -> Any:
        """``note(phase_name)`` for the task, or None when the line is off."""
        return self.stream.phase_callback() if self.stream is not None else None

    def finish(self) -> None:
        """Every phase is done."""
        self.display.finish()

    def _announced(self, phase: Phase) -> None:
        self.display.phase(phase.name)
