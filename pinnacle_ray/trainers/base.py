"""What every trainer shares: the result type, query-to-dataset with planned resources, and
turning a Ray Train failure back into the user's own exception."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray.data
import ray.train
from ray.train import CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig

from .._internal.constants import RAY_TRAIN_HEALTH_CHECK_ENV, RAY_TRAIN_PREEMPTION_ENV, verbose
from .._internal.names import ascii_label
from ..datastore.base import store_of
from ..errors import ConfigError, TrainingFailed
from .cluster_shape import read_shape
from .progress import FitProgress, progress_on
from .report_stream import ReportStream
from .resources import ResourcePlan, plan_resources
from .retention import Retention
from .run_folder import KeepHandled
from .start_checkpoint import set_registered_start
from .storage import RegisteredCheckpoint
from .tabular import quiet, read_once

__all__ = [
    "TrainResult",
    "datasets_for",
    "default_run_config",
    "fit_reports",
    "in_tune_trial",
    "lineage_of",
    "plan_for",
    "progress_shown",
    "raise_worker_error",
    "ray_train_env",
    "ray_train_loop",
    "registered_model",
    "reported_checkpoints",
    "reporting_to_tune",
    "run_lineage",
    "run_reported",
    "store_of",
    "warn_unregistered",
    "worker_config",
]

logger = logging.getLogger("pinnacle_ray.trainers")


class _Query(Protocol):
    def to_dataset(
        self, shards: int | None = None, *, num_cpus: float | None = None, cache: bool = False
    ) -> ray.data.Dataset: ...


@dataclass
class TrainResult:
    """A finished run: its name, final metrics and last checkpoint (``ray.train.Checkpoint``).

    ``version`` is the registered model version, ``None`` when the run was not registered;
    ``record`` is what registering stores (a sweep registers its best trial's later).
    """

    name: str
    metrics: dict[str, Any]
    checkpoint: ray.train.Checkpoint | None
    version: int | None = None
    path: str | None = None
    ray_result: Any = field(default=None, repr=False)
    record: Any = field(default=None, repr=False)
    # Every report of the run in order (report_stream.Report), as the driver received them.
    reports: list[Any] = field(default_factory=list, repr=False)

    @property
    def history(self) -> Any:
        """Every report of the run as a pandas DataFrame, one row per report in order:
        ``step``, ``epoch``, ``time`` (UTC), ``checkpoint``, then a column per metric (the
        same frame ``store.models.metrics(name, version)`` reads back)."""
        from ..registry.history import history_frame

        reports = getattr(self, "reports", None) or getattr(self.record, "history", None) or []
        if not reports and self.record is not None:
            reports = [m for _, m in self.record.reported]
        elif not reports:
            reports = [self.metrics] if self.metrics else []
        return history_frame(reports)


def plan_for(scaling: ScalingConfig | None) -> ResourcePlan:
    """Fit ``scaling`` and the data reads into the current cluster, per node and with what
    its autoscaler can add; say once what changed or that the run waits for a scale-up."""
    scaling = scaling or ScalingConfig(num_workers=1)
    plan = plan_resources(scaling, read_shape())
    if plan.note:
        logger.warning(plan.note)
    return plan


def datasets_for(
    queries: dict[str, _Query | ray.data.Dataset | None],
    plan: ResourcePlan,
    cache: Collection[str] = (),
) -> dict[str, ray.data.Dataset]:
    """Ray Datasets for the named queries, their read tasks sized by ``plan``; the ones
    named in ``cache`` are read once into Ray's object store (a query's in the background,
    a Dataset's now)."""
    out = {}
    for name, query in queries.items():
        if query is None:
            continue
        if isinstance(query, ray.data.Dataset):
            out[name] = read_once(query) if name in cache else query
        elif hasattr(query, "to_dataset"):
            if name in cache:
                dataset = query.to_dataset(num_cpus=plan.read_cpus, cache=True)
            else:
                dataset = query.to_dataset(num_cpus=plan.read_cpus)
            # Each epoch re-reads the shards in Ray Train's split coordinator, which would
            # reprint Ray Data's progress bars per epoch; training reports show progress.
            out[name] = quiet(dataset)
        else:
            raise ConfigError(
                f"{name}= must be a query (store.table / store.sql) or a ray.data.Dataset, "
                f"got {type(query).__name__}"
            )
    return out


def raise_worker_error(exc: BaseException) -> None:
    """Re-raise the first worker's own exception (same type and message) instead of Ray's
    wrapper, with a note saying which worker raised it; a worker that died (killed, crashed,
    node lost) or a failed controller becomes ``TrainingFailed`` with Ray's error as its
    cause. Returns if ``exc`` is none of these."""
    failures = getattr(exc, "worker_failures", None)
    if not failures:
        if _is_ray_failure(exc) and type(exc).__name__ == "ControllerError":
            root = getattr(exc, "controller_failure", exc)
            raise TrainingFailed(
                f"the Ray Train run failed in its controller ({_one_line(root)}); nothing was "
                "registered. Fix the cause and fit again"
            ) from exc
        return
    # A dead worker explains the others' errors (their collectives lose a peer): report it.
    deaths = sorted((r, e) for r, e in failures.items() if _is_ray_failure(e))
    if deaths:
        rank, error = deaths[0]
        root = getattr(error, "health_check_failure", None) or error
        raise TrainingFailed(
            f"Ray Train worker {rank} died ({_one_line(root)}) and the run had no restart "
            "left, so it stopped; nothing was registered. To resume from the latest "
            "checkpoint after such a failure, pass run_config=RunConfig(failure_config="
            "FailureConfig(max_failures=N)) (Ray's default is 0) and report checkpoints"
        ) from root
    rank, error = sorted(failures.items())[0]
    cause = getattr(error, "cause", None)  # RayTaskError keeps the user's exception here
    original = cause if isinstance(cause, BaseException) else error
    original.add_note(f"(raised in Ray Train worker {rank}; {len(failures)} worker(s) failed)")
    raise original from None


def _is_ray_failure(error: BaseException) -> bool:
    """A failure of Ray itself (an actor or node died, a health check failed), not an
    exception raised by the user's code."""
    import ray.exceptions

    if isinstance(error, ray.exceptions.RayTaskError) or hasattr(error, "cause"):
        return False
    return isinstance(error, ray.exceptions.RayError) or type(error).__module__.startswith(
        "ray.train"
    )


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__


def default_run_config(name: str, checkpoint_config: CheckpointConfig | None = None) -> RunConfig:
    """A quiet RunConfig whose run name is unique per fit.

    Ray Train V2 restores a run from storage when its name matches an earlier one, which
    would make a second ``fit`` silently continue the first; pass your own ``run_config``
    with a fixed name when that is what you want.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RunConfig(
        # Ray Train tags its metrics with the run name, and metrics tags are ASCII.
        name=f"{ascii_label(name)}-{stamp}-{uuid.uuid4().hex[:6]}",
        # Ray Train's own INFO lines (every report, every checkpoint) drown the user's output.
        logging_config=LoggingConfig(log_level="WARNING"),
        checkpoint_config=checkpoint_config,
    )


def fit_run_config(
    run_config: RunConfig | None, name: str, retention: Retention | None = None
) -> RunConfig:
    """The RunConfig a fit hands Ray Train: the user's (their ``checkpoint_config`` rules),
    else a fresh uniquely named one whose checkpoints ``retention`` bounds as the run goes
    (each deleted once no handle names it: ``KeepHandled``; all kept without one, and by
    Ray itself, whose ``num_to_keep`` would drop ``epoch_<n>`` handles); reporting to Tune
    in a trial."""
    if run_config is None:
        run_config = default_run_config(name, CheckpointConfig(num_to_keep=None))
        if retention is not None:
            run_config = dataclasses.replace(run_config, callbacks=[KeepHandled(retention)])
    return reporting_to_tune(run_config)


def reporting_to_tune(run_config: RunConfig) -> RunConfig:
    """``run_config`` with Ray Tune's ``TuneReportCallback`` added when the run starts inside
    a Tune trial (``pr.sweep``, or your own Tuner): every ``ray.train.report`` of the
    workers then reaches Tune, so schedulers such as ASHA see intermediate metrics, as in
    Ray's Train + Tune guide. Outside Tune, or with the callback already there, unchanged."""
    if not in_tune_trial():
        return run_config
    from ray.tune.integration.ray_train import TuneReportCallback

    callbacks = list(run_config.callbacks or [])
    if any(isinstance(c, TuneReportCallback) for c in callbacks):
        return run_config
    return dataclasses.replace(run_config, callbacks=[*callbacks, TuneReportCallback()])


def in_tune_trial() -> bool:
    """True inside a Ray Tune trial's function (not in Train workers, not in a driver)."""
    if "ray.tune" not in sys.modules:  # a trial process has imported Tune; spare the import
        return False
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    return bool(_in_tune_session())


def lineage_of(query: Any) -> dict[str, Any] | None:
    """What a query read, enough to read it again (None for a plain Dataset)."""
    lineage = getattr(query, "lineage", None)
    return lineage() if callable(lineage) else None


def run_lineage(train: Any, valid: Any, holdout: dict[str, Any] | None) -> dict[str, Any]:
    """What a run read: its queries, or for validation without a query, the holdout rule."""
    return {
        "train": lineage_of(train),
        "valid": lineage_of(valid) if valid is not None else holdout,
    }


def registered_model(
    store: Any, name: str, version: int | None, handle: str, features: list[str]
) -> tuple[Any, dict[str, Any]]:
    """The registered model a run resumes from (loaded by its flavor, with ``handle``'s
    weights) and the parent record for the new version; refused when it was trained on
    other features."""
    if store is None:
        raise ConfigError("resume_from= needs train= to be a datastore query (its registry)")
    record = store.models.get(name, version=version, handle=handle)
    model = store.models.load(name, version=record.version, handle=handle)
    trained = list(getattr(model, "features", None) or [])
    if trained != list(features):
        raise ConfigError(
            f"{name} version {record.version} was trained on features {trained}, "
            f"not {list(features)}"
        )
    logger.info("resuming from %s version %s handle %r", name, record.version, handle)
    return model, {"name": name, "version": record.version, "handle": handle}


def warn_unregistered(name: str) -> None:
    """Say once that a run on a plain Dataset has no registry to go to."""
    logger.warning("%s: train= is not a datastore query; the run is not registered", name)


RESUME_KEY = "_pinnacle_resume_from"


def ray_train_loop(loop: Callable[..., Any], config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train's ``train_loop_per_worker`` and ``train_loop_config`` for ``loop`` given
    ``config``: the config goes as :func:`worker_config` ships it, and the loop runs after
    per-worker set-up (the config opened again, the registered checkpoint to resume from for
    ``pr.get_checkpoint()``, quiet logs). One call, so the two halves always go together."""
    return {
        "train_loop_per_worker": functools.partial(_run_worker, loop),
        "train_loop_config": worker_config(config),
    }


# train_loop_config key of the values only the workers open (worker_config)
_SHIPPED_KEY = "_pinnacle_ray_shipped"
_PLAIN = (str, int, float, bool, type(None))


def worker_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as Ray Train's ``train_loop_config``: plain values (numbers, strings and
    lists or dicts of them, a custom loop's hyperparameters) stay as they are, which Ray's
    dashboard shows; every other value (a model, a tokenizer, the managed loop's settings, a
    checkpoint to resume from) goes into one object-store entry that only the workers open.

    Why: Ray Train hands ``train_loop_config`` to its controller actor as well, which
    unpickles it and so imports what its objects need without ever using them (measured on
    a tiny one-worker Hugging Face fit: the controller took 5.8 s to unpickle its arguments
    with the tokenizer among them, 2.5 s without, the rest being ``ray.train.torch``; the
    fit 22.7 s against 15.9 s). This is Ray's own advice for large or heavy objects:
    ``ray.put`` them and pass the reference."""
    plain = {k: v for k, v in config.items() if _is_plain(v)}
    heavy = {k: v for k, v in config.items() if k not in plain}
    if heavy:
        plain[_SHIPPED_KEY] = ray.put(heavy)
    return plain


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def opened_config(config: dict[str, Any]) -> dict[str, Any]:
    """On a worker: the config :func:`worker_config` was given, its shipped values fetched."""
    config = dict(config)
    shipped = config.pop(_SHIPPED_KEY, None)
    if shipped is not None:
        config.update(ray.get(shipped))
    return config


def _run_worker(loop: Callable[..., Any], config: dict[str, Any]) -> Any:
    config = opened_config(config)
    start = config.pop(RESUME_KEY, None)
    if isinstance(start, RegisteredCheckpoint):  # opened on this worker's node
        start = start.to_checkpoint()
    set_registered_start(start)
    if not verbose():
        # Ray Train logs every report at INFO under a logger named after its file, which
        # LoggingConfig does not reach; one line per report drowns a loop's own output.
        from ray.train.v2._internal.execution import context

        logging.getLogger(context.__file__).setLevel(logging.WARNING)
    required = [
        p
        for p in inspect.signature(loop).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return loop(config) if required else loop()


@contextlib.contextmanager
def ray_train_env() -> Iterator[None]:
    """Settings Ray Train reads from the driver's environment, for this fit only; a value
    you set yourself is kept.

    - The controller polls its workers every 0.1 s instead of 2 s: it collects reports
      and notices the end of a run only when it polls, so a short run idled seconds at its
      end (measured: an empty 2-worker run, 13.6 s -> 9.8 s at 0.25 s) and a checkpoint
      reported just before a crash could be missed. A worker's report waits until the
      previous one was collected (Ray Train's result queue holds one), so the poll also
      bounds how often a loop can report: the quickstart's 18 epochs take 0.26 s each at a
      0.25 s poll, 0.23 s at 0.1 s (2026-12-06, 2 CPUs); a 200k-row fit with two reports
      (train_overhead) was no slower at 0.1 s (12.31-12.48 s against 12.85-13.64 s).
    - On a single-node cluster there is no node to lose to preemption, so Ray Train's
      preemption watcher (one more actor process to start) is not started.
    """
    wanted = {RAY_TRAIN_HEALTH_CHECK_ENV: "0.1"}
    if len(ray.nodes()) == 1:
        wanted[RAY_TRAIN_PREEMPTION_ENV] = "0"
    added = [k for k in wanted if k not in os.environ]
    for k in added:
        os.environ[k] = wanted[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def reported_checkpoints(result: Any) -> list[tuple[ray.train.Checkpoint, dict[str, Any]]]:
    """Every kept (checkpoint, metrics) of the run, in the order they were reported."""
    pairs = list(getattr(result, "best_checkpoints", None) or [])
    if not pairs and result.checkpoint is not None:
        pairs = [(result.checkpoint, dict(result.metrics or {}))]
    return sorted(pairs, key=lambda p: p[1].get("step", 0) if isinstance(p[1], dict) else 0)


def fit_reports(
    progress: bool | None,
    name: str,
    *,
    listen: str | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    unit: str = "step",
) -> tuple[ReportStream, FitProgress]:
    """The report stream of one fit and its progress line, subscribed to it; the line is
    shown when ``progress`` is True, or when it is None and stderr is a terminal (never by
    default inside a Tune trial: the sweep shows its own). Raises ConfigError for a bad
    ``progress`` before anything starts."""
    display = FitProgress(
        name, listen=listen, steps=steps, epochs=epochs, unit=unit, enabled=progress_shown(progress)
    )
    stream = ReportStream()
    stream.subscribe(display)
    return stream, display


def progress_shown(progress: bool | None) -> bool:
    """Whether a fit shows its progress line: ``progress`` when given, else whether stderr
    is a terminal, but not by default inside a Tune trial (the sweep shows its own line).
    ConfigError for anything but True, False or None."""
    shown = progress_on(progress)
    return False if progress is None and in_tune_trial() else shown


def run_reported(trainer: Any, stream: ReportStream, display: FitProgress) -> Any:
    """``trainer.fit()`` (a Ray Train trainer built with ``stream.attach(run_config)``),
    its reports streamed to the driver and shown by ``display`` while it runs."""
    with display, stream, ray_train_env():
        return trainer.fit()
