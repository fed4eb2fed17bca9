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
import json
import logging
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, redact
from ..registry.lineage import mask_secrets
from .build import build_query, build_trainer, connect_store, search_space
from .records import JobRecord, JobRecords
from .spec import LoadedSpec

__all__ = ["RunOutcome", "current_submission_id", "run_predict", "run_sweep", "run_train"]

logger = logging.getLogger("pinnacle_ray.jobs")

_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # ray._private.runtime_env.constants


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


def current_submission_id() -> str | None:
    """The Ray job submission id when this process is a Ray job's driver, else None."""
    text = os.environ.get(_JOB_CONFIG_ENV)
    if not text:
        return None
    try:
        metadata = json.loads(text).get("metadata") or {}
    except (ValueError, AttributeError):
        return None
    return metadata.get("job_submission_id") or None


def run_train(spec: LoadedSpec, *, progress: bool = True) -> RunOutcome:
    """Train the spec's trainer on its queries (registering unless ``register: false``)."""
    callbacks = None
    if progress and spec.run.trainer.kind != "sklearn":
        from .progress import ProgressCallback

        listen = getattr(spec.run.trainer, "listen", None)
        callbacks = [ProgressCallback(spec.run.name, listen)]
    store = connect_store(spec.run)
    with _recorded(spec, store) as submission_id:
        trainer = build_trainer(spec, callbacks)
        train = build_query(store, spec.run.train, "train")
        valid = build_query(store, spec.run.valid, "valid") if spec.run.valid else None
        result = trainer.fit(train=train, valid=valid, register=spec.run.register_model)
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
    with _recorded(spec, store) as submission_id:
        query = build_query(store, section.query, "predict.query")
        outcome = _predicted(pr.predict(model, query, output=output, **kwargs), submission_id)
        _finish(store, submission_id, outcome)
    return outcome


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


_STOPPED = "stopped by Ray (ray job stop / pinnacle-ray jobs stop)"


class _Stopped(BaseException):
    """Ray stopped the job (SIGTERM); recorded as STOPPED, not as a failure."""


@contextlib.contextmanager
def _recorded(spec: LoadedSpec, store: Any) -> Iterator[str | None]:
    """Keep the job record of this run (when it is a Ray job) in step with what happens."""
    submission_id = current_submission_id()
    if submission_id is None:
        yield None
        return
    jobs = JobRecords(store)
    now = dt.datetime.now(dt.timezone.utc)
    existing = jobs.find(submission_id)
    if existing is None:  # plain `ray job submit -- pinnacle-ray train spec.yaml`
        jobs.save(
            JobRecord(
                submission_id=submission_id,
                name=spec.run.name,
                status="RUNNING",
                spec_digest=spec.digest,
                spec=spec.masked,
                source=spec.source,
                entrypoint="(ray job submit)",
                started_at=now,
            )
        )
    else:
        jobs.update(submission_id, status="RUNNING", started_at=now, error=None)
    previous = signal.getsignal(signal.SIGTERM)
    stopped: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopped.append(signum)
        raise _Stopped()

    signal.signal(signal.SIGTERM, stop)
    try:
        yield submission_id
    except BaseException as exc:
        if stopped:
            # Raised inside a blocking Ray call, _Stopped comes back as another exception
            # (Ray 2.60 runs the handler when ray.get returns, inside its own code, and
            # raises a SystemError): the flag decides, not the exception's type.
            _end(jobs, submission_id, "STOPPED", _STOPPED)
            raise SystemExit(143) from None
        # the CLI prints the traceback into the job's logs; the record keeps one line
        _end(jobs, submission_id, "FAILED", _error_text(exc, spec))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _finish(store: Any, submission_id: str | None, outcome: RunOutcome) -> None:
    if submission_id is None:
        return
    JobRecords(store).update(
        submission_id,
        status="SUCCEEDED",
        ended_at=dt.datetime.now(dt.timezone.utc),
        model_name=outcome.name,
        model_version=outcome.version,
        metrics=mask_secrets(outcome.metrics),
    )


def _end(jobs: JobRecords, submission_id: str, status: str, error: str) -> None:
    try:
        jobs.update(
            submission_id, status=status, ended_at=dt.datetime.now(dt.timezone.utc), error=error
        )
    except Exception as exc:  # the run's own failure matters more; Ray's status still tells
        logger.warning("could not record job %s as %s: %s", submission_id, status, exc)


def _error_text(exc: BaseException, spec: LoadedSpec) -> str:
    """The error for the record: passwords in URLs masked, and the values of the secret-
    named variables the spec uses (``${DB_PASSWORD}``) replaced by ``***``."""
    secrets = [os.environ.get(n, "") for n in spec.env_names if _SECRET_NAME.search(n)]
    return redact(mask_secrets(f"{type(exc).__name__}: {exc}"), secrets)[:4000]


_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|ACCESS_?KEY", re.I)
