"""Run a spec: train, sweep or predict, and keep its job record up to date when it runs as a
Ray job (``pinnacle-ray submit`` or plain ``ray job submit -- pinnacle-ray train spec.yaml``).

Inside a Ray job the driver knows its submission id (Ray passes it in the job config), so
the run marks its record ``RUNNING``, then ``SUCCEEDED`` with the model version it produced,
or ``FAILED`` with the error (``STOPPED`` when Ray stops it). A record that a killed driver
could not finish is corrected from Ray's own status by :mod:`.tracking`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..trainers import progress_on
from .build import build_query, build_trainer, connect_store, search_space
from .recording import (
    STOPPED_TEXT,
    current_submission_id,
    mark_finished,
    recorded,
    secret_values,
)
from .records import JobRecord, JobRecords
from .spec import LoadedSpec

__all__ = ["RunOutcome", "current_submission_id", "run_predict", "run_sweep", "run_train"]

logger = logging.getLogger("pinnacle_ray.jobs")


@dataclass
class RunOutcome:
    """What a spec run produced: the model and version, metrics, and its job id if any;
    for a sweep its name and trials (best first), for predictions the rows written where."""

    name: str
    version: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    submission_id: str | None = None
    rows: int | None = None
    output: str | None = None
    sweep: str | None = None
    trials: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "metrics": self.metrics,
            "submission_id": self.submission_id,
            "rows": self.rows,
            "output": self.output,
            "sweep": self.sweep,
            "trials": self.trials,
        }


def run_train(spec: LoadedSpec, *, progress: bool = True) -> RunOutcome:
    """Train the spec's trainer on its queries (registering unless ``register: false``).

    ``progress``: at a terminal, the fit's own live line; elsewhere (a Ray job's logs) one
    printed line per report."""
    callbacks = None
    live = progress and progress_on(None)
    if progress and not live and spec.run.trainer.kind != "sklearn":
        from .progress import ProgressCallback

        listen = getattr(spec.run.trainer, "listen", None)
        callbacks = [ProgressCallback(spec.run.name, listen)]
    store = connect_store(spec.run)
    _check_storage(spec, store)
    with _recorded(spec, store) as submission_id:
        trainer = build_trainer(spec, callbacks)
        train = build_query(store, spec.run.train, "train")
        valid = build_query(store, spec.run.valid, "valid") if spec.run.valid else None
        result = trainer.fit(
            train=train, valid=valid, register=spec.run.register_model, progress=live
        )
        outcome = RunOutcome(result.name, result.version, dict(result.metrics), submission_id)
        _finish(store, submission_id, outcome)
    return outcome


def run_sweep(spec: LoadedSpec) -> RunOutcome:
    """Sweep the spec's ``tune:`` section with ``pr.sweep`` (the best trial is registered)."""
    import pinnacle_ray as pr

    tune = spec.run.tune
    if tune is None:
        raise ConfigError(
            f"{spec.source} has no 'tune:' section; add one with param_space, metric and mode "
            "to sweep"
        )
    store = connect_store(spec.run)
    _check_storage(spec, store)
    with _recorded(spec, store) as submission_id:
        trainer = build_trainer(spec)
        train = build_query(store, spec.run.train, "train")
        valid = build_query(store, spec.run.valid, "valid") if spec.run.valid else None
        scheduler = None
        if tune.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler()
        result = pr.sweep(
            trainer,
            param_space=search_space(tune),
            train=train,
            valid=valid,
            metric=tune.metric,
            mode=tune.mode,
            num_samples=tune.num_samples,
            scheduler=scheduler,
            name=tune.name,
        )
        outcome = RunOutcome(
            result.name,
            result.version,
            dict(result.metrics or {}),
            submission_id,
            sweep=result.sweep,
            trials=[_trial_dict(t) for t in result.trials],
        )
        _finish(store, submission_id, outcome)
    return outcome


def _trial_dict(trial: Any) -> dict[str, Any]:
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "best": trial.best,
        "version": trial.version,
        "score": trial.score,
        "params": trial.params,
        "metrics": trial.metrics,
    }


def run_predict(
    spec: LoadedSpec | None = None,
    *,
    model: str | None = None,
    query: Any = None,
    output: str | None = None,
    **kwargs: Any,
) -> RunOutcome:
    """Write predictions with ``pr.predict``: from the spec's ``predict:`` section, or from
    ``model``/``query``/``output`` given directly (``kwargs`` as ``pr.predict`` takes them)."""
    import pinnacle_ray as pr

    if spec is None:
        return _predicted(pr.predict(model, query, output=output, **kwargs), None)
    section = spec.run.predict
    if section is None:
        raise ConfigError(f"{spec.source} has no 'predict:' section; add one with query and output")
    store = connect_store(spec.run)
    model = model or section.model or spec.run.name
    output = output or section.output
    kwargs = {**section.given("model", "query", "output"), **kwargs}
    trainer_model = getattr(spec.run.trainer, "model", None)
    torch_model = getattr(spec.run.trainer, "kind", None) == "torch"
    if torch_model and isinstance(trainer_model, str) and "trusted_modules" not in kwargs:
        # The spec names the model's class itself: its module is trusted for the rebuild.
        kwargs["trusted_modules"] = [trainer_model]
    _check_storage(spec, store, with_run=False)
    with _recorded(spec, store) as submission_id:
        query = build_query(store, section.query, "predict.query")
        outcome = _predicted(pr.predict(model, query, output=output, **kwargs), submission_id)
        _finish(store, submission_id, outcome)
    return outcome


def _check_storage(spec: LoadedSpec, store: Any, *, with_run: bool = True) -> None:
    """``StorageNotShared`` before the job record is written when the run's checkpoints or
    model files would stay on this node's disk while the cluster has others (a SQLite store,
    a local-folder artifact root or ``storage_path``): the job would fail later on them."""
    from ..trainers import check_reachable

    path = getattr(spec.run, "storage_path", None) if with_run else None
    check_reachable(store, what=f"job {spec.run.name!r} ({spec.source})", storage_path=path)


def _predicted(result: Any, submission_id: str | None) -> RunOutcome:
    """A ``pr.predict`` result (``PredictResult``) as a run outcome."""
    return RunOutcome(
        result.model,
        result.version,
        {"timing/seconds": round(result.seconds, 3)},
        submission_id,
        rows=result.rows,
        output=result.output,
    )


_STOPPED = STOPPED_TEXT


@contextlib.contextmanager
def _recorded(spec: LoadedSpec, store: Any) -> Iterator[str | None]:
    """Keep the job record of this run (when it is a Ray job) in step with what happens
    (:func:`.recording.recorded`; a record made here for plain ``ray job submit``)."""
    submission_id = current_submission_id()
    if submission_id is None:
        yield None
        return

    def new_record(now: dt.datetime) -> JobRecord:  # plain `ray job submit -- pinnacle-ray ...`
        return JobRecord(
            submission_id=submission_id,
            name=spec.run.name,
            status="RUNNING",
            spec_digest=spec.digest,
            spec=spec.masked,
            source=spec.source,
            entrypoint="(ray job submit)",
            started_at=now,
        )

    # the values of the secret-named variables the spec uses (${DB_PASSWORD}) become ***
    secrets = secret_values(spec.env_names)
    with recorded(JobRecords(store), submission_id, new_record, secrets=secrets):
        yield submission_id


def _finish(store: Any, submission_id: str | None, outcome: RunOutcome) -> None:
    if submission_id is None:
        return
    mark_finished(
        JobRecords(store),
        submission_id,
        name=outcome.name,
        version=outcome.version,
        metrics=outcome.metrics,
    )
