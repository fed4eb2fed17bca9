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

A trainer plugs in when it follows the ``pinnacle_ray.trainers.Trainer`` Protocol: its
``get_params()`` gives back the arguments it was built with (each trial builds
``type(t)(**{**t.get_params(), ...})``), its ``fit(train, valid, register=False)`` returns
a ``TrainResult`` with a ``record``, and ``reported_metrics`` lets the metric be checked up
front. Without a ``record``, the best parameters are trained once more to register them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ray.tune

from .._internal.names import ascii_label, validate_name
from ..trainers.base import store_of
from ..trainers.cluster_shape import read_shape
from ..trainers.progress import progress_on
from ..trainers.resources import ClusterResources, plan_trials, read_reserve
from ..trainers.storage import with_run_storage
from ..trainers.tracking import Tracking
from .checks import check_columns, check_metric, check_settings, sweep_name
from .cleanup import ReleaseStoppedRuns
from .data import SharedQuery, share
from .outcome import finish_sweep
from .params import check_space, check_trainer, flatten_space, with_arguments
from .plan import (
    TRIAL_BUNDLE,
    per_trial,
    sweep_storage,
    trains,
    trial_count,
    trial_resources,
    trial_storage,
)
from .progress import SweepProgress
from .result import SweepResult
from .trial import run_trial

if TYPE_CHECKING:
    from ..trainers import Trainer

__all__ = ["sweep"]

logger = logging.getLogger("pinnacle_ray.tune")


def sweep(
    trainer: Trainer,
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

    ``param_space`` maps parameter paths to ``ray.tune`` search spaces (or fixed values),
    nested parameters named with ``__`` as in scikit-learn: ``"optimizer_kwargs__lr"``,
    ``"train_loop_config__lr"``, ``"params__max_depth"``, ``"training_args__learning_rate"``,
    ``"estimator__alpha"`` (``estimator__ridge__alpha`` for a pipeline step),
    ``"batch_size"``; a nested dict (``{"optimizer_kwargs": {"lr": ...}}``) is the same path.
    The dotted paths of earlier releases (``"optimizer_kwargs.lr"``) still work, with a
    ``FutureWarning``. ``metric``/``mode`` pick
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
    check_trainer(trainer)
    # Names first: they become folders and Ray run names (the best trial registers as
    # trainer.name).
    validate_name(trainer.name)
    if name is not None:
        validate_name(name, "sweep name")
    metric, mode, num_samples = check_settings(metric, mode, num_samples, max_concurrent_trials)
    shown = progress_on(progress)
    space = flatten_space(param_space)
    check_space(trainer, space)
    store = store_of(train)
    name = sweep_name(name, trainer, store)
    storage = sweep_storage(trainer, store, name)
    check_columns(trainer, train, valid)
    check_metric(trainer, train, valid, metric)

    shape = read_shape()  # per node, with what the autoscaler can add
    cluster = ClusterResources(shape.total("CPU"), shape.total("GPU"))
    planned, trial_cpus, trial_gpus, note = per_trial(trainer, shape)
    tracker = _sweep_tracking(trainer, tracking, callbacks)
    given = planned.get_params()
    if given.get("tracking") or given.get("callbacks"):
        # The sweep logs every trial from here; trials must not log a run each as well.
        planned = with_arguments(planned, tracking=None, callbacks=None)
    reads = read_reserve(cluster.cpus) / 2
    shared_train, shared_valid = share(train, "train", reads), share(valid, "valid", reads)
    streamed = isinstance(shared_train, SharedQuery) and not shared_train.materialized
    # A fit task streaming its reads needs them beside it (Ray Train runs count them already).
    extra = read_reserve(cluster.cpus) if streamed and not trains(planned) else 0.0
    plan = plan_trials(
        trial_cpus + extra,
        trial_gpus,
        cluster,
        trial_count(space, num_samples),
        max_concurrent_trials,
    )
    message = f"sweep {name!r}: {plan}" + (f"; {note}" if note else "")
    (logger.warning if note else logger.info)(message)

    experiment = f"{ascii_label(name)}-{uuid.uuid4().hex[:6]}"  # Ray's tags are ASCII
    trainable = ray.tune.with_resources(
        ray.tune.with_parameters(
            run_trial,
            trainer=planned,
            train=shared_train,
            valid=shared_valid,
            storage=trial_storage(trainer, storage, experiment),
        ),
        trial_resources(planned, trial_cpus),
    )
    # Only Ray Train runs leave placement groups behind when a trial is stopped.
    release = ReleaseStoppedRuns(TRIAL_BUNDLE) if trains(planned) else None
    watch = SweepProgress(name, trial_count(space, num_samples), metric, mode, enabled=shown)
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
    return finish_sweep(
        grid, trainer, name, metric, mode, plan, store, train, valid, register, tracker
    )


def _sweep_tracking(trainer: Trainer, tracking: Any, callbacks: Any) -> Tracking:
    """The sweep's trackers: its own ``tracking``/``callbacks``, else the trainer's."""
    own = Tracking.of(tracking, callbacks)
    if own.callbacks:
        return own
    given = trainer.get_params()
    return Tracking.of(given.get("tracking"), given.get("callbacks"))
