"""PNG pictures of a run's metric history and of a sweep, drawn with matplotlib.

Figures are built as ``matplotlib.figure.Figure`` on an Agg canvas, never through
``pyplot``: no backend is switched, no global figure or rcParams entry changes in the
caller's process. Each picture is ``WIDTH`` pixels wide and ``PANEL_HEIGHT`` per panel,
and its PNG metadata (``Description``) lists the lines drawn, one per metric.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from .._internal.extras import needs_extra
from ..errors import ConfigError

__all__ = ["DPI", "PANEL_HEIGHT", "WIDTH", "curve_groups", "plot_history", "plot_sweep"]

WIDTH, PANEL_HEIGHT, DPI = 900, 320, 100
# Columns of a history frame that are positions or counters, not curves.
_NOT_CURVES = {"step", "epoch", "time", "checkpoint", "round", "epoch_done", "trial_id"}


def curve_groups(frame: Any) -> dict[str, list[str]]:
    """The metric columns of a history ``frame`` worth drawing, grouped by what they measure
    (``train/loss`` and ``valid/loss`` share the ``loss`` panel), in first-seen order."""
    import pandas as pd

    groups: dict[str, list[str]] = {}
    for column in frame.columns:
        name = str(column)
        if name in _NOT_CURVES or name.startswith("timing/") or name.endswith("/rows"):
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().sum() == 0 or frame[column].dtype == bool:
            continue
        groups.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    return groups


def plot_history(frame: Any, path: str | os.PathLike[str], title: str) -> list[str]:
    """Draw the curves of history ``frame`` (``store.models.metrics(...)``) against the step
    into PNG ``path``, one panel per measure, one line per metric; the metrics drawn."""
    import pandas as pd

    groups = curve_groups(frame)
    if not groups:
        raise ConfigError(
            f"{title} has no metric history to plot (columns: {list(frame.columns)}); only "
            "versions registered by a fit record one"
        )
    x = frame["step"] if frame["step"].notna().all() else pd.Series(range(len(frame)))
    xlabel = "step" if frame["step"].notna().all() else "report"
    figure, axes = _figure(len(groups))
    drawn = []
    for ax, (measure, columns) in zip(axes, groups.items(), strict=True):
        for column in columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            seen = values.notna()
            ax.plot(x[seen].astype(float), values[seen], marker="." if seen.sum() < 30 else None,
                    label=column)  # fmt: skip
            drawn.append(column)
        ax.set_ylabel(measure)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_title(title)
    _save(figure, path, title, drawn)
    return drawn


def plot_sweep(trials: Sequence[Any], path: str | os.PathLike[str], title: str) -> list[str]:
    """Draw each trial's score (the sweep's metric) against each swept parameter into PNG
    ``path``, one panel per parameter, the best trial marked; the parameters drawn."""
    scored = [t for t in trials if t.score is not None]
    if not scored:
        raise ConfigError(f"{title}: no trial reported the sweep's metric; nothing to plot")
    metric = scored[0].metric
    params = sorted({k for t in scored for k, v in t.params.items() if _number(v) is not None})
    if not params:
        raise ConfigError(
            f"{title}: the swept parameters {sorted({k for t in scored for k in t.params})} "
            "are not numbers; nothing to plot against"
        )
    figure, axes = _figure(len(params))
    for ax, param in zip(axes, params, strict=True):
        points = sorted(
            (_number(t.params.get(param)), t.score, t.best)
            for t in scored
            if _number(t.params.get(param)) is not None
        )
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] for p in points], linestyle="none", marker="o", label=metric)
        best = [p for p in points if p[2]]
        if best:
            ax.scatter([b[0] for b in best], [b[1] for b in best], s=120, facecolors="none",
                       edgecolors="red", label="best", zorder=3)  # fmt: skip
        positive = [v for v in xs if v > 0]
        if len(positive) == len(xs) and len(xs) > 1 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_title(title)
    _save(figure, path, title, params)
    return params


def _figure(panels: int) -> tuple[Any, list[Any]]:
    with needs_extra("plot", "plotting"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH / DPI, PANEL_HEIGHT * panels / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(panels, 1, squeeze=False)[:, 0]
    return figure, list(axes)


def _save(figure: Any, path: str | os.PathLike[str], title: str, lines: list[str]) -> None:
    figure.tight_layout()
    try:
        figure.savefig(
            os.fspath(path),
            format="png",
            dpi=DPI,
            metadata={"Title": title, "Description": json.dumps({"lines": lines})},
        )
    except OSError as exc:
        raise ConfigError(f"cannot write the plot to {os.fspath(path)!r}: {exc}") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
