"""What a sweep keeps of each trial's run: its reports (stored with the sweep) and, with a
tracker, one MLflow run per trial under a parent run for the sweep."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..trainers.tracking import MLflowRun, Tracking

__all__ = ["log_sweep", "trial_reports"]

# Tune's own bookkeeping in every result (and a trial's metrics_dataframe): not what a trial
# measured. One list for the sweep's summary (tune/best.py) and the trials' histories (here).
TUNE_BOOKKEEPING = frozenset(
    {
        "checkpoint_dir_name",
        "config",
        "date",
        "done",
        "experiment_tag",
        "hostname",
        "iterations_since_restore",
        "node_ip",
        "pid",
        "should_checkpoint",
        "time_since_restore",
        "time_this_iter_s",
        "time_total_s",
        "trial_id",
    }
)
# A history keeps its own step and time: Tune's iteration count is not a report's metric.
_TUNE_COLUMNS = TUNE_BOOKKEEPING | {"training_iteration"}


def trial_reports(result: Any, record: Any, done_key: str) -> list[Any]:
    """Every report of one trial, in order: the run's own report stream when the trial
    finished and sent its run record, else what Tune saw (``metrics_dataframe``: every
    Ray Train report reaches Tune in a trial; a trial stopped early sends no record)."""
    history = getattr(record, "history", None) if record is not None else None
    if history:
        return list(history)
    frame = getattr(result, "metrics_dataframe", None)
    if frame is None or len(frame) == 0:
        return []
    rows = []
    for raw in frame.to_dict("records"):
        if raw.get(done_key):  # the trial's closing summary, not a report of the run
            continue
        metrics = {
            str(k): v
            for k, v in raw.items()
            if k not in _TUNE_COLUMNS
            and not str(k).startswith(("config/", "timing/"))
            and _present(v)
        }
        metrics.pop(done_key, None)
        when = raw.get("timestamp")
        metrics.pop("timestamp", None)
        rows.append(_Row(metrics, when))
    return rows


class _Row:
    """A report rebuilt from Tune's dataframe (metrics and its unix time)."""

    def __init__(self, metrics: dict[str, Any], when: Any) -> None:
        self.metrics = metrics
        self.step = None
        self.epoch = None
        self.time = float(when) if isinstance(when, (int, float)) and _present(when) else None
        self.has_checkpoint = False


def log_sweep(
    tracking: Tracking,
    *,
    sweep: str,
    model: str,
    metric: str,
    mode: str,
    trials: Sequence[tuple[str, str, Mapping[str, Any], list[Any], bool]],
) -> MLflowRun | None:
    """Log the sweep as a parent run and each trial (id, status, params, reports, best)
    as a child run; the best trial's run (what its registered version records)."""
    best_run = None
    for cb in tracking.callbacks:
        parent = cb.start_run(
            model,
            {"sweep.metric": metric, "sweep.mode": mode, "sweep.trials": len(trials)},
            tags={"pinnacle.sweep": sweep},
            run_name=sweep,
        )
        for trial_id, status, params, reports, best in trials:
            child = cb.start_run(
                model,
                params,
                tags={
                    "pinnacle.sweep": sweep,
                    "pinnacle.trial_id": trial_id,
                    "pinnacle.trial_status": status,
                    "pinnacle.best": str(best).lower(),
                },
                run_name=f"{sweep}/{trial_id}",
                parent_run_id=parent.run_id,
            )
            child.log_reports(reports)
            child.end(failed=status == "error")
            if best:
                tracking.runs.append(child)  # linked to the registered version later
                parent.set_tags({"pinnacle.best_trial": trial_id})
                best_run = best_run or child
        parent.end()
    return best_run


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))
