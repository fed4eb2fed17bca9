"""After a sweep's trials: pick the best finished trial, register it (with its parameters,
the sweep's name and its trial id), keep every trial's parameters, final metrics and
reports in the datastore (``store.models.sweeps(name)``), log them to a tracker, and remove
the sweep's folder once the registry holds what it was kept for."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MetricNotReported
from ..registry import SweepTrial
from ..trainers.registration import RunRecord
from ..trainers.resources import TrialPlan
from ..trainers.run_folder import registered_latest, remove_folder
from ..trainers.tracking import Tracking
from .history import TUNE_BOOKKEEPING, log_sweep, trial_reports
from .params import with_params
from .result import SweepResult
from .trial import DONE_KEY, RECORD_FILE

if TYPE_CHECKING:
    from ..trainers import Trainer

__all__ = ["finish_sweep"]

logger = logging.getLogger("pinnacle_ray.tune")

# How Tune says that a result lacks the metric it optimizes.
_METRIC_MISSING = "did not include the specified metric"
# Tune's bookkeeping and our closing flag: not what a trial measured.
_TUNE_FIELDS = TUNE_BOOKKEEPING | {"checkpoint_path", "timestamp", DONE_KEY}


def finish_sweep(
    grid: Any,
    trainer: Trainer,
    name: str,
    metric: str,
    mode: str,
    plan: TrialPlan,
    store: Any,
    train: Any,
    valid: Any,
    register: bool,
    tracker: Tracking,
) -> SweepResult:
    """The sweep's result from Tune's ``grid``: the best trial registered (unless
    ``register=False``), every trial recorded in ``store``, the folder removed once
    registered. Raises the trials' own error when none finished."""
    results = list(grid)
    finished = [r for r in results if _status(r) == "completed" and _score(r, metric) is not None]
    if not finished:
        _raise_no_trial(results, metric)
    errored = [r for r in results if r.error is not None]
    if errored:
        logger.warning(
            "sweep %r: %d of %d trial(s) failed (first: %s: %s); the best is chosen among the "
            "others",
            name,
            len(errored),
            len(results),
            _trial_id(errored[0]),
            str(errored[0].error).splitlines()[0] if str(errored[0].error) else "",
        )
    pick = min if mode == "min" else max
    best = pick(finished, key=lambda r: _score(r, metric))
    record = _load_record(best)
    model_name = trainer.name
    reports = {
        _trial_id(r): trial_reports(r, record if r is best else _trial_record(r), DONE_KEY)
        for r in results
    }
    tracked = None
    if tracker:
        tracked = log_sweep(
            tracker,
            sweep=name,
            model=model_name,
            metric=metric,
            mode=mode,
            trials=[
                (_trial_id(r), _status(r), dict(r.config or {}), reports[_trial_id(r)], r is best)
                for r in results
            ],
        )
    tracked_lineage = {"tracking": tracked.lineage()} if tracked is not None else {}
    version = None
    sweep_info = {
        "name": name,
        "trial_id": _trial_id(best),
        "params": dict(best.config),
        "metric": metric,
        "mode": mode,
    }
    if register and store is not None:
        if record is not None:
            version = record.register(
                store, config={"sweep": sweep_info}, lineage={"sweep": name, **tracked_lineage}
            )
            if version is None:
                logger.warning(
                    "sweep %r: the best trial reported no checkpoint; nothing to register "
                    "(report one with pr.report(metrics, model=...))",
                    name,
                )
        else:
            logger.warning(
                "sweep %r: %s returns no run record; training the best parameters once more "
                "to register them",
                name,
                type(trainer).__name__,
            )
            again = with_params(trainer, best.config).fit(train, valid, register=True)
            version = store.models.get(model_name, version=again.version) if again.version else None
    trials = [
        SweepTrial(
            sweep=name,
            trial_id=_trial_id(r),
            model=model_name,
            status=_status(r),
            params=dict(r.config or {}),
            metrics=_trial_metrics(r),
            metric=metric,
            mode=mode,
            best=r is best,
            version=version.version if (r is best and version is not None) else None,
        )
        for r in results
    ]
    if store is not None:
        store.models.record_sweep(trials)
        for trial_id, trial_history in reports.items():
            if trial_history:
                store.models.record_trial_history(name, trial_id, trial_history)
    if tracker:
        tracker.link(model_name, version.version if version is not None else None)
    trials = sorted(trials, key=lambda t: (not t.best, t.score is None, _signed(t, mode)))
    checkpoint = record.reported[-1][0] if record is not None and record.reported else None
    if version is not None:
        # Registered: the registry holds what the sweep's folder (Tune's trial records and
        # every trial's own run, see _trial_storage) was kept for.
        checkpoint = registered_latest(store, model_name, version.version)
        remove_folder(grid.filesystem, grid.experiment_path, f"sweep {name!r} registered")
    return SweepResult(
        name=model_name,
        metrics=_trial_metrics(best),
        checkpoint=checkpoint,
        version=version.version if version is not None else None,
        path=best.path,
        ray_result=best,
        record=record,
        sweep=name,
        trial_id=_trial_id(best),
        params=dict(best.config),
        trials=trials,
        plan=plan,
        grid=grid,
    )


def _status(result: Any) -> str:
    if result.error is not None:
        return "error"
    return "completed" if (result.metrics or {}).get(DONE_KEY) else "stopped"


def _score(result: Any, metric: str) -> float | None:
    value = (result.metrics or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _signed(trial: SweepTrial, mode: str) -> float:
    score = trial.score
    return 0.0 if score is None else (score if mode == "min" else -score)


def _trial_id(result: Any) -> str:
    return str((result.metrics or {}).get("trial_id") or Path(result.path).name)


def _trial_metrics(result: Any) -> dict[str, Any]:
    metrics = result.metrics or {}
    return {
        k: v
        for k, v in metrics.items()
        if k not in _TUNE_FIELDS
        and not str(k).startswith("timing/")
        and isinstance(v, (int, float, bool, str))
    }


def _trial_record(result: Any) -> RunRecord | None:
    """A finished trial's run record (for its reports); None for a trial stopped early or
    failed, whose last checkpoint is not the record."""
    if _status(result) != "completed":
        return None
    try:
        return _load_record(result)
    except (OSError, ValueError, KeyError) as exc:
        logger.debug("trial %s: no run record (%s)", _trial_id(result), exc)
        return None


def _load_record(result: Any) -> RunRecord | None:
    if result.checkpoint is None:
        return None
    with result.checkpoint.as_directory() as folder:
        payload = json.loads(Path(folder, RECORD_FILE).read_text())
    data = payload.get("record")
    # The trial's Ray Train checkpoints live in the storage Tune kept this one in.
    return RunRecord.from_json(data, result.checkpoint.filesystem) if data else None


def _raise_no_trial(results: list[Any], metric: str) -> None:
    """Every trial failed or none reported the metric: the first trial's own error, else
    MetricNotReported naming what the trials did report."""
    for r in results:
        if r.error is not None:
            error = r.error
            if _METRIC_MISSING in str(error):  # Tune's check of every reported result
                raise MetricNotReported(
                    f"metric={metric!r} is missing from the trials' reports (e.g. trial "
                    f"{_trial_id(r)} reported {sorted(_trial_metrics(r))}); sweep on a metric "
                    "every report of the loop carries"
                ) from None
            cause = getattr(error, "cause", None)
            original = cause if isinstance(cause, BaseException) else error
            original.add_note(f"(raised in every trial of the sweep; first: {_trial_id(r)})")
            raise original
    seen = sorted({k for r in results for k in _trial_metrics(r)})
    raise MetricNotReported(
        f"metric={metric!r} was never reported by any trial; they reported {seen}. Sweep on "
        "one of those, or report it from the loop"
    )
