"""``pr.sweep``: a Ray Tune hyperparameter sweep of any pinnacle_ray trainer, on queries.

Each trial is a Tune function that builds the trainer with the trial's parameters and
calls its ``fit``, the way Ray's Train + Tune guide (Ray Train V2) launches a Ray Train run
per trial; inside a trial, the trainers add ``TuneReportCallback`` so every report of the
workers reaches Tune, and schedulers such as ASHA stop bad trials early. Around that, the
sweep does what a bare ``Tuner`` leaves to you:

- it checks parameter paths, mode and metric before any trial starts;
- it plans resources once: each trial's workers plus its data reads, and how many trials
  fit at a time (the rest queue), so a sweep never waits forever on 2 CPUs;
- it reads the query once for all trials;
- it registers the best trial as a new model version (with its parameters, the sweep's
  name and the trial id) and keeps every trial's parameters and final metrics in the
  datastore (``store.models.sweeps(name)``).

A trainer plugs in when its class keeps its constructor arguments
(:func:`pinnacle_ray.trainers.base.keeps_arguments`) and its ``fit(train, valid,
register=False)`` returns a ``TrainResult`` with a ``record``; ``reported_metrics`` lets the
metric be checked up front. Without a ``record``, the best parameters are trained once more
to register them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.data
import ray.train
import ray.tune
from ray.train.constants import DEFAULT_STORAGE_PATH
from ray.tune import PlacementGroupFactory

from . import _tune_params as params
from ._names import ascii_label, validate_name
from ._tune_cleanup import ReleaseStoppedRuns
from ._tune_data import SharedQuery, share
from ._tune_history import TUNE_BOOKKEEPING, log_sweep, trial_reports
from ._tune_progress import SweepProgress
from .errors import ColumnNotFound, ConfigError, MetricNotReported
from .registry import SweepTrial
from .trainers.base import TrainResult, store_of
from .trainers.cluster_shape import ClusterShape, read_shape
from .trainers.progress import progress_on
from .trainers.registration import RunRecord
from .trainers.resources import (
    ClusterResources,
    TrialPlan,
    plan_resources,
    plan_trials,
    read_reserve,
)
from .trainers.run_folder import registered_latest, remove_folder
from .trainers.storage import (
    StorageChoice,
    decide,
    storage_for_trials,
    user_storage_path,
    with_run_storage,
)
from .trainers.tracking import Tracking

__all__ = ["SweepResult", "sweep"]

logger = logging.getLogger("pinnacle_ray.tune")

RECORD_FILE = "pinnacle_run.json"
# What a trial driving a Ray Train run reserves in Tune: memory, no CPU.
TRIAL_BUNDLE = {"memory": 256 * 1024 * 1024}
# The last report of a trial that ran to its end carries this; a trial stopped by the
# scheduler never sends it.
DONE_KEY = "pinnacle/done"
# How Tune says that a result lacks the metric it optimizes.
_METRIC_MISSING = "did not include the specified metric"
# Tune's bookkeeping and our closing flag: not what a trial measured.
_TUNE_FIELDS = TUNE_BOOKKEEPING | {"checkpoint_path", "timestamp", DONE_KEY}


@dataclass
class SweepResult(TrainResult):
    """The best trial of a sweep as a ``TrainResult`` (registered ``version``, ``metrics``,
    ``checkpoint``), plus the sweep: its ``trials`` as stored in the datastore, the best
    trial's ``params`` and id, the resource ``plan`` and Tune's own ``grid`` (``ResultGrid``).

    Example::

        result = pr.sweep(trainer, {"optimizer_kwargs.lr": tune.loguniform(1e-4, 1e-1)},
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


def sweep(
    trainer: Any,
    param_space: Mapping[str, Any],
    train: Any,
    valid: Any = None,
    *,
    metric: str,
    mode: str = "min",
    num_samples: int = 1,
    scheduler: Any = None,
    search_alg: Any = None,
    max_concurrent_trials: int | None = None,
    name: str | None = None,
    register: bool = True,
    progress: bool | None = None,
    tracking: str | None = None,
    callbacks: list[Any] | None = None,
) -> SweepResult:
    """Sweep ``trainer``'s arguments over ``param_space`` with Ray Tune; register the best.

    ``param_space`` maps parameter paths to ``ray.tune`` search spaces (or fixed values):
    ``"optimizer_kwargs.lr"``, ``"train_loop_config.lr"``, ``"params.max_depth"``,
    ``"estimator__alpha"`` (scikit-learn ``set_params`` names; ``estimator__ridge__alpha``
    for a pipeline step), ``"batch_size"``; nested dicts work too. ``metric``/``mode`` pick
    the best trial and drive ``scheduler`` (e.g. ``ASHAScheduler()``) and ``search_alg``.
    ``max_concurrent_trials`` caps how many run at once; never more than the cluster holds.
    ``progress`` shows a live line (trials done/total, running, the best value so far and
    its parameters) on stderr; None (default): only when stderr is a terminal.

    The best trial is registered as a new version of ``trainer.name`` in ``train``'s
    datastore (``register=False`` to skip) with the sweep's ``name`` and its trial id;
    every trial is kept in ``store.models.sweeps(name)``, and every report of each trial
    in ``store.models.trial_metrics(name)``. Once the best is registered, the sweep's
    folder (Tune's trial records and each trial's run) is removed: the returned
    ``checkpoint`` is the registered copy; ``register=False`` keeps the folder.

    ``tracking="mlflow"`` or ``callbacks=[pr.MLflowCallback(...)]`` (default: the trainer's
    own) log the sweep as an MLflow run with one child run per trial (its params and every
    report); the best trial's run is tagged with the registered version.
    """
    # Names first: they become folders and Ray run names (the best trial registers as
    # trainer.name).
    validate_name(getattr(trainer, "name", None))
    if name is not None:
        validate_name(name, "sweep name")
    metric, mode, num_samples = _check_settings(metric, mode, num_samples, max_concurrent_trials)
    shown = progress_on(progress)
    space = params.flatten_space(param_space)
    params.check_space(trainer, space)
    store = store_of(train)
    name = _sweep_name(name, trainer, store)
    storage = _sweep_storage(trainer, store, name)
    _check_columns(trainer, train, valid)
    _check_metric(trainer, train, valid, metric)

    shape = read_shape()  # per node, with what the autoscaler can add
    cluster = ClusterResources(shape.total("CPU"), shape.total("GPU"))
    planned, trial_cpus, trial_gpus, note = _per_trial(trainer, shape)
    tracker = _sweep_tracking(trainer, tracking, callbacks)
    if getattr(planned, "tracking", None) or getattr(planned, "callbacks", None):
        # The sweep logs every trial from here; trials must not log a run each as well.
        planned = params.with_arguments(planned, tracking=None, callbacks=None)
    reads = read_reserve(cluster.cpus) / 2
    shared_train, shared_valid = share(train, "train", reads), share(valid, "valid", reads)
    streamed = isinstance(shared_train, SharedQuery) and not shared_train.materialized
    # A fit task streaming its reads needs them beside it (Ray Train runs count them already).
    extra = read_reserve(cluster.cpus) if streamed and not _trains(planned) else 0.0
    plan = plan_trials(
        trial_cpus + extra,
        trial_gpus,
        cluster,
        _trial_count(space, num_samples),
        max_concurrent_trials,
    )
    message = f"sweep {name!r}: {plan}" + (f"; {note}" if note else "")
    (logger.warning if note else logger.info)(message)

    experiment = f"{ascii_label(name)}-{uuid.uuid4().hex[:6]}"  # Ray's tags are ASCII
    trainable = ray.tune.with_resources(
        ray.tune.with_parameters(
            _run_trial,
            trainer=planned,
            train=shared_train,
            valid=shared_valid,
            storage=_trial_storage(trainer, storage, experiment),
        ),
        _trial_resources(planned, trial_cpus),
    )
    # Only Ray Train runs leave placement groups behind when a trial is stopped.
    release = ReleaseStoppedRuns(TRIAL_BUNDLE) if _trains(planned) else None
    watch = SweepProgress(name, _trial_count(space, num_samples), metric, mode, enabled=shown)
    tuner = ray.tune.Tuner(
        trainable,
        param_space=space,
        tune_config=ray.tune.TuneConfig(
            metric=metric,
            mode=mode,
            num_samples=num_samples,
            scheduler=scheduler,
            search_alg=search_alg,
            max_concurrent_trials=plan.concurrent,
        ),
        # The trials' own checkpoints (their run records) live where their Ray Train runs
        # keep theirs, so the driver reads the best trial's from any node.
        run_config=with_run_storage(
            ray.tune.RunConfig(
                name=experiment,
                verbose=0,
                callbacks=[c for c in (release, watch) if c is not None],
            ),
            storage,
        ),
    )
    started = time.perf_counter()
    try:
        grid = tuner.fit()
    finally:
        watch.close()
        if release is not None:
            release.release()
    logger.info("sweep %r: %d trial(s) in %.1f s", name, len(grid), time.perf_counter() - started)
    return _finish(grid, trainer, name, metric, mode, plan, store, train, valid, register, tracker)


# -- before any trial ----------------------------------------------------------------------
def _check_settings(
    metric: Any, mode: Any, num_samples: Any, max_concurrent: Any
) -> tuple[str, str, int]:
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"metric must be the name of a reported metric, got {metric!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or max_concurrent < 1
    ):
        raise ConfigError(
            f"max_concurrent_trials must be a positive integer or None, got {max_concurrent!r}"
        )
    return metric, mode, num_samples


def _sweep_name(name: str | None, trainer: Any, store: Any) -> str:
    if name is None:
        name = f"{getattr(trainer, 'name', 'model')}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    name = validate_name(name, "sweep name")
    if store is not None and store.models.sweeps(name):
        raise ConfigError(
            f"a sweep named {name!r} is already recorded in {store.url}; give this one "
            "another name (store.models.sweeps(name) shows the earlier one)"
        )
    return name


def _sweep_storage(trainer: Any, store: Any, name: str) -> StorageChoice:
    """Where the trials' runs (and Tune's own trial checkpoints) are stored: the trainer's
    ``run_config.storage_path`` when the user set one, else the datastore's storage as for
    a fit; refused (``StorageNotShared``) when trials on other nodes could not reach it."""
    run_config = getattr(trainer, "run_config", None)
    choice = decide(store, run_config, what=f"sweep {name!r}")
    if choice.default and run_config is not None and user_storage_path(run_config) is not None:
        return StorageChoice(str(run_config.storage_path), run_config.storage_filesystem)
    return choice


def _trial_storage(trainer: Any, storage: StorageChoice, experiment: str) -> StorageChoice:
    """Where each trial's own run (Ray Train's, or a scikit-learn fit's) keeps its
    checkpoints: inside the sweep's Tune folder ``experiment``, so that one removal once
    the best trial is registered takes every trial's, finished, stopped or failed. A
    trainer with a ``run_config`` of its own keeps its runs where that says."""
    if getattr(trainer, "run_config", None) is not None:
        return storage
    base = storage.storage_path if storage.storage_path is not None else DEFAULT_STORAGE_PATH
    return StorageChoice(f"{str(base).rstrip('/')}/{experiment}", storage.storage_filesystem)


def _check_columns(trainer: Any, train: Any, valid: Any) -> None:
    """ColumnNotFound for a feature or label the queries lack, before 8 trials find out."""
    if getattr(trainer, "transform", None) or getattr(trainer, "preprocess", None):
        return  # a torch transform/preprocess makes its columns from the query's
    wanted = [*(getattr(trainer, "features", None) or [])]
    label = getattr(trainer, "label", None)
    if isinstance(label, str):
        wanted.append(label)
    for role, query in (("train", train), ("valid", valid)):
        schema_of = getattr(query, "schema", None)
        if not wanted or not callable(schema_of):
            continue
        schema = schema_of()
        names = list(getattr(schema, "names", []) or [])
        missing = [c for c in wanted if names and c not in names]
        if missing:
            raise ColumnNotFound(
                f"the {role} query has no column(s) {missing}; its columns are {names}"
            )


def _check_metric(trainer: Any, train: Any, valid: Any, metric: str) -> None:
    reported = getattr(trainer, "reported_metrics", None)
    names = reported(train, valid) if callable(reported) else None
    if names is not None and metric not in names:
        raise MetricNotReported(
            f"metric={metric!r} is never reported by {type(trainer).__name__} on these "
            f"queries; it reports {sorted(names)}"
        )


def _per_trial(trainer: Any, cluster: ClusterShape) -> tuple[Any, float, float, str | None]:
    """The trainer each trial runs (its workers' resources planned once, so trials do not
    re-plan or re-warn), and the CPUs/GPUs one trial holds while it trains."""
    scaling = getattr(trainer, "scaling_config", None)
    if scaling is None:  # one fit task (scikit-learn): its CPUs
        return trainer, float(getattr(trainer, "num_cpus", None) or 1), 0.0, None
    plan = plan_resources(scaling, cluster)
    scaling = plan.scaling_config
    per_worker = dict(scaling.resources_per_worker or {})
    per_worker.setdefault("CPU", 1.0)
    scaling = dataclasses.replace(scaling, resources_per_worker=per_worker)
    n = scaling.min_workers  # an elastic trial starts with its minimum and grows into room
    cpus = float(per_worker["CPU"]) * n + read_reserve(cluster.total("CPU"))
    gpus = float(per_worker.get("GPU", 1.0 if scaling.use_gpu else 0.0)) * n
    return params.with_arguments(trainer, scaling_config=scaling), cpus, gpus, plan.note


def _trial_resources(trainer: Any, trial_cpus: float) -> PlacementGroupFactory:
    """What Tune reserves per trial. The trial's own process only drives the run, so it
    asks for no CPU (the head bundle is empty). A Ray Train run places its workers in a
    placement group of its own, so the trial reserves only its memory; a fit task (which
    Tune schedules inside the trial's placement group) gets a bundle with its CPUs."""
    if _trains(trainer):
        return PlacementGroupFactory([{}, TRIAL_BUNDLE])
    return PlacementGroupFactory([{}, {"CPU": trial_cpus}])


def _trains(trainer: Any) -> bool:
    """Whether the trainer runs Ray Train workers (else one fit task)."""
    return getattr(trainer, "scaling_config", None) is not None


def _trial_count(space: dict[str, Any], num_samples: int) -> int:
    grids = [len(v["grid_search"]) for v in space.values() if isinstance(v, Mapping)]
    return num_samples * math.prod(grids)


# -- one trial (runs in a Tune trial actor) ------------------------------------------------
def _run_trial(
    config: dict[str, Any], *, trainer: Any, train: Any, valid: Any, storage: StorageChoice
) -> None:
    """Build the trainer with this trial's parameters, fit it without registering (its
    checkpoints in the sweep's ``storage``), and report its final metrics to Tune with the
    record needed to register it later."""
    candidate = params.with_params(trainer, config)
    with storage_for_trials(storage):
        result = candidate.fit(train, valid, register=False)
    record: RunRecord | None = getattr(result, "record", None)
    checkpointed = record is not None and record.reported
    metrics = record.main_metrics() if checkpointed else dict(result.metrics or {})
    with tempfile.TemporaryDirectory(prefix="pinnacle-trial-") as folder:
        payload = {"record": record.to_json() if record is not None else None}
        Path(folder, RECORD_FILE).write_text(json.dumps(payload))
        ray.tune.report(
            {**_numbers(metrics), DONE_KEY: 1},
            checkpoint=ray.tune.Checkpoint.from_directory(folder),
        )


def _numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (int, float, bool)) and not str(k).startswith("timing/")
    }


# -- after the trials ----------------------------------------------------------------------
def _finish(
    grid: Any,
    trainer: Any,
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
    model_name = getattr(trainer, "name", None) or "model"
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
            again = params.with_params(trainer, best.config).fit(train, valid, register=True)
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


def _sweep_tracking(trainer: Any, tracking: Any, callbacks: Any) -> Tracking:
    """The sweep's trackers: its own ``tracking``/``callbacks``, else the trainer's."""
    own = Tracking.of(tracking, callbacks)
    if own.callbacks:
        return own
    return Tracking.of(getattr(trainer, "tracking", None), getattr(trainer, "callbacks", None))
