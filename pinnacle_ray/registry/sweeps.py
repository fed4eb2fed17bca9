"""The trials of hyperparameter sweeps, kept in the datastore beside the model versions.

One row per trial (table ``<prefix>_sweeps``): its parameters, final metrics and status,
which trial was best and the version it was registered as. A sweep can be compared later
from the database alone, without Ray's result folder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .._internal.clock import as_utc
from .._internal.json_text import from_json, to_json
from .._internal.secrets import mask
from ..datastore.base import Datastore
from .records import validate_name

__all__ = ["SWEEPS", "SWEEP_KEY", "SweepTrial", "read_trials", "write_trials"]

SWEEPS = pa.schema(
    [
        ("sweep", pa.string()),
        ("trial_id", pa.string()),
        ("model", pa.string()),
        ("status", pa.string()),  # "completed", "stopped" (by the scheduler) or "error"
        ("params", pa.string()),  # JSON: the trial's values of the swept parameters
        ("metrics", pa.string()),  # JSON: its last reported metrics
        ("metric", pa.string()),
        ("mode", pa.string()),
        ("best", pa.bool_()),
        ("version", pa.int64()),  # the registered version (the best trial only)
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
SWEEP_KEY = ["sweep", "trial_id"]


@dataclass(frozen=True)
class SweepTrial:
    """One trial of a sweep: its parameters, final metrics and how it ended."""

    sweep: str
    trial_id: str
    model: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    metric: str
    mode: str
    best: bool = False
    version: int | None = None
    created_at: dt.datetime | None = None

    @property
    def score(self) -> float | None:
        """The trial's value of the sweep's metric (None when it never reported it)."""
        value = self.metrics.get(self.metric)
        return float(value) if isinstance(value, (int, float)) else None


def write_trials(store: Datastore, table: str, trials: Sequence[SweepTrial]) -> None:
    """Upsert ``trials`` into ``table`` (created on first use), one transaction."""
    now = dt.datetime.now(dt.timezone.utc)
    rows = [
        {
            "sweep": validate_name(t.sweep),
            "trial_id": t.trial_id,
            "model": t.model,
            "status": t.status,
            "params": to_json(mask(t.params)),
            "metrics": to_json(t.metrics),
            "metric": t.metric,
            "mode": t.mode,
            "best": t.best,
            "version": t.version,
            "created_at": t.created_at or now,
        }
        for t in trials
    ]
    if rows:
        store.write(table, pa.Table.from_pylist(rows, schema=SWEEPS), SWEEP_KEY)


def read_trials(store: Datastore, table: str, sweep: str | None = None) -> list[SweepTrial]:
    """The trials in ``table`` (of ``sweep``, or of every sweep), best first within a sweep,
    then by score; an empty list when no sweep was recorded yet."""
    if table not in store.tables():
        return []
    where = {"sweep": validate_name(sweep)} if sweep is not None else {}
    rows = store.table(table, where=where).to_arrow().to_pylist()
    trials = [
        SweepTrial(
            sweep=r["sweep"],
            trial_id=r["trial_id"],
            model=r["model"],
            status=r["status"],
            params=from_json(r["params"]),
            metrics=from_json(r["metrics"]),
            metric=r["metric"],
            mode=r["mode"],
            best=bool(r["best"]),
            version=int(r["version"]) if r["version"] is not None else None,
            created_at=as_utc(r["created_at"]),
        )
        for r in rows
    ]
    return sorted(trials, key=_order)


def _order(t: SweepTrial) -> tuple[Any, ...]:
    score = t.score
    missing = score is None
    signed = 0.0 if score is None else (score if t.mode == "min" else -score)
    return (t.sweep, not t.best, missing, signed, t.trial_id)
