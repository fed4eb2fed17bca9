"""Metric history: every report of a run (step, epoch, time, metrics) kept in the datastore.

A registered version's reports live in ``<prefix>_metric_history`` (one row per report,
keyed by name, version and position), a sweep trial's in ``<prefix>_trial_history`` (keyed
by sweep, trial id and position). Both read back as a pandas DataFrame with one row per
report, in the order reported: ``step``, ``epoch``, ``time`` (UTC), ``checkpoint`` (whether
the report carried one), then one column per reported metric.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .._internal.json_text import from_json, to_json
from ..datastore.base import Datastore
from ..errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HISTORY_COLUMNS",
    "HistoryRow",
    "history_frame",
    "history_rows",
    "read_history",
    "trial_history_schema",
    "version_history_schema",
    "write_history",
]

# The columns every history frame starts with; the metrics follow, in first-seen order.
HISTORY_COLUMNS = ["step", "epoch", "time", "checkpoint"]

_REPORT_FIELDS = [
    ("seq", pa.int64()),
    ("step", pa.int64()),
    ("epoch", pa.int64()),
    ("time", pa.timestamp("us", tz="UTC")),
    ("checkpoint", pa.bool_()),
    ("metrics", pa.string()),  # JSON
]


def version_history_schema() -> tuple[pa.Schema, list[str]]:
    """The Arrow schema and key of the history table of registered versions."""
    schema = pa.schema([("name", pa.string()), ("version", pa.int64()), *_REPORT_FIELDS])
    return schema, ["name", "version", "seq"]


def trial_history_schema() -> tuple[pa.Schema, list[str]]:
    """The Arrow schema and key of the history table of sweep trials."""
    schema = pa.schema([("sweep", pa.string()), ("trial_id", pa.string()), *_REPORT_FIELDS])
    return schema, ["sweep", "trial_id", "seq"]


@dataclass(frozen=True)
class HistoryRow:
    """One report of a run: its metrics, step, epoch, wall-clock time and checkpoint flag."""

    metrics: dict[str, Any]
    step: int | None = None
    epoch: int | None = None
    time: dt.datetime | None = None
    checkpoint: bool = False

    def to_json(self) -> dict[str, Any]:
        """The row as JSON-able data (``from_json`` reads it back)."""
        return {
            "metrics": self.metrics,
            "step": self.step,
            "epoch": self.epoch,
            "time": self.time.isoformat() if self.time is not None else None,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryRow:
        """The row :meth:`to_json` wrote."""
        when = data.get("time")
        return cls(
            metrics=dict(data.get("metrics") or {}),
            step=data.get("step"),
            epoch=data.get("epoch"),
            time=_when(when),
            checkpoint=bool(data.get("checkpoint")),
        )


def history_rows(reports: Iterable[Any]) -> list[HistoryRow]:
    """``reports`` as history rows: ``HistoryRow``s (or their ``to_json`` dicts),
    report-stream ``Report``s (``metrics``, ``step``, ``epoch``, ``time``,
    ``has_checkpoint``) or plain metric dicts (step and epoch from their entries)."""
    rows = []
    for report in reports:
        if isinstance(report, HistoryRow):
            rows.append(report)
            continue
        if isinstance(report, Mapping) and isinstance(report.get("metrics"), Mapping):
            rows.append(HistoryRow.from_json(report))  # what HistoryRow.to_json wrote
            continue
        if isinstance(report, Mapping):
            metrics, step, epoch, when, ckpt = dict(report), None, None, None, False
        elif hasattr(report, "metrics"):
            metrics = dict(report.metrics or {})
            step, epoch = getattr(report, "step", None), getattr(report, "epoch", None)
            when = getattr(report, "time", None)
            ckpt = bool(getattr(report, "has_checkpoint", False))
        else:
            raise ConfigError(
                "a metric history takes reports (metrics dicts or report-stream Reports), "
                f"got {type(report).__name__}"
            )
        rows.append(
            HistoryRow(
                metrics=metrics,
                step=_int(step if step is not None else metrics.get("step")),
                epoch=_int(epoch if epoch is not None else metrics.get("epoch")),
                time=_when(when),
                checkpoint=ckpt,
            )
        )
    return rows


def write_history(
    store: Datastore,
    table: str,
    owner: Mapping[str, Any],
    schema: tuple[pa.Schema, list[str]],
    rows: Sequence[HistoryRow],
) -> int:
    """Store ``rows`` under ``owner`` (e.g. ``{"name": .., "version": ..}``) in ``table``
    (created on first use), replacing what that owner had; the rows written."""
    arrow_schema, key = schema
    if table in store.tables():
        store.delete(table, dict(owner))
    if not rows:
        return 0
    data = [
        {
            **owner,
            "seq": i,
            "step": r.step,
            "epoch": r.epoch,
            "time": r.time,
            "checkpoint": r.checkpoint,
            "metrics": to_json(_finite(r.metrics)),
        }
        for i, r in enumerate(rows)
    ]
    return store.write(table, pa.Table.from_pylist(data, schema=arrow_schema), key)


def read_history(store: Datastore, table: str, owner: Mapping[str, Any]) -> list[HistoryRow]:
    """The rows stored under ``owner`` in ``table``, in the order they were reported."""
    if table not in store.tables():
        return []
    found = store.table(table, where=dict(owner)).to_arrow().to_pylist()
    found.sort(key=lambda r: r["seq"])
    return [
        HistoryRow(
            metrics=from_json(r["metrics"]),
            step=r["step"],
            epoch=r["epoch"],
            time=_when(r["time"]),
            checkpoint=bool(r["checkpoint"]),
        )
        for r in found
    ]


def history_frame(rows: Iterable[Any]) -> pd.DataFrame:
    """A DataFrame with one row per report: ``step``, ``epoch``, ``time``, ``checkpoint`` and
    one column per metric (first-seen order; missing values are NaN)."""
    import pandas as pd

    rows = history_rows(rows)
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(k for k in r.metrics if k not in HISTORY_COLUMNS))
    records = [
        {
            "step": r.step,
            "epoch": r.epoch,
            "time": r.time,
            "checkpoint": r.checkpoint,
            **{k: r.metrics.get(k) for k in names},
        }
        for r in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=[*HISTORY_COLUMNS, *names])
    for column in ("step", "epoch"):
        frame[column] = frame[column].astype("Int64")
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _when(value: Any) -> dt.datetime | None:
    """A report's time as an aware UTC datetime (from epoch seconds or a datetime)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
    return None


def _finite(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/inf: such values are stored as null (NaN in the frame)."""
    return {
        str(k): None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in metrics.items()
    }
