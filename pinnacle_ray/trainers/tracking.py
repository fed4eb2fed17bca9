"""Experiment tracking: every report of a fit or sweep logged to MLflow, linked to the version.

``tracking="mlflow"`` (the tracking URI from ``MLFLOW_TRACKING_URI``, as MLflow reads it) or
``callbacks=[pr.MLflowCallback(tracking_uri=..., experiment=...)]`` on a trainer or
``pr.sweep``. A fit becomes one MLflow run: the trainer's settings as params, each report's
metrics at its step (from the driver's report stream, as the run goes), and once it is
registered, tags naming the model and version; the version's lineage records the run id
(``lineage["tracking"]``, shown on its model card). Everything goes through an
``MlflowClient`` of its own: MLflow's global active run, tracking URI and experiment in the
user's process are never changed.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .._internal.extras import require
from .._internal.secrets import mask
from ..errors import ConfigError

__all__ = ["INSTALL_HINT", "MLflowCallback", "Tracking", "flat_params"]

logger = logging.getLogger("pinnacle_ray.trainers")

INSTALL_HINT = 'pip install "pinnacle-ray[mlflow]"'
TRACKERS = ("mlflow",)
# MLflow's limits per log_batch call, and on a param value's length.
_BATCH_METRICS, _BATCH_PARAMS, _PARAM_CHARS = 1000, 100, 6000


def _mlflow() -> Any:
    return require("mlflow", purpose="tracking to MLflow")


class MLflowCallback:
    """Log each fit (or each sweep trial) as an MLflow run.

    ``tracking_uri``: the tracking server or store (``http://...``, ``sqlite:///mlflow.db``,
    ``databricks``); default ``MLFLOW_TRACKING_URI``, else MLflow's own default.
    ``experiment``: the experiment name, created when missing (default: the model's name).
    ``tags`` are added to every run. MLflow's global state (active run, tracking URI) is
    left alone.

    Example::

        trainer = pr.TorchTrainer(model=net, features=[...], label="price", name="mlp",
                                  callbacks=[pr.MLflowCallback("sqlite:///mlflow.db")])
        result = trainer.fit(train=q)
        store.models.get("mlp").lineage["tracking"]["mlflow_run_id"]
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        if tracking_uri is not None and not isinstance(tracking_uri, str):
            raise ConfigError(
                f"MLflowCallback(tracking_uri=...) must be a URI string such as "
                f"'sqlite:///mlflow.db' or 'http://host:5000', got {type(tracking_uri).__name__}"
            )
        if experiment is not None and (not isinstance(experiment, str) or not experiment):
            raise ConfigError(
                f"MLflowCallback(experiment=...) must be a non-empty name, got {experiment!r}"
            )
        if tags is not None and not isinstance(tags, Mapping):
            raise ConfigError(f"MLflowCallback(tags=...) must be a dict, got {type(tags).__name__}")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.tags = dict(tags or {})

    def __repr__(self) -> str:
        uri = mask(self.tracking_uri) if self.tracking_uri else None
        return f"MLflowCallback(tracking_uri={uri!r}, experiment={self.experiment!r})"

    # -- one run ---------------------------------------------------------------------------
    def client(self) -> Any:
        """An ``MlflowClient`` for this callback's tracking URI (MLflow's default if None)."""
        _mlflow()
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def start_run(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ) -> MLflowRun:
        """Create a run in the experiment (default: ``name``), with ``params`` logged."""
        client = self.client()
        experiment_id = _experiment(client, self.experiment or name)
        all_tags = {"pinnacle.model": name, **self.tags, **dict(tags or {})}
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(
            experiment_id,
            run_name=run_name or name,
            tags={str(k): str(v) for k, v in all_tags.items()},
        )
        tracked = MLflowRun(client, run.info.run_id, experiment_id, self.tracking_uri)
        tracked.log_params(params or {})
        return tracked


class MLflowRun:
    """One MLflow run being logged: reports as metrics, then tags and its end status."""

    def __init__(
        self, client: Any, run_id: str, experiment_id: str, tracking_uri: str | None
    ) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self.tracking_uri = client.tracking_uri if tracking_uri is None else tracking_uri
        self._seq = 0

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` (nested dicts flattened with dots; long values shortened)."""
        from mlflow.entities import Param

        flat = [Param(k, v) for k, v in flat_params(params).items()]
        for i in range(0, len(flat), _BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=flat[i : i + _BATCH_PARAMS])

    def log_report(self, report: Any) -> None:
        """Log one report's numeric metrics at its step (its position when it has none);
        a report-stream subscriber."""
        self.log_reports([report])

    __call__ = log_report

    def log_reports(self, reports: Iterable[Any]) -> None:
        """Log ``reports`` in order (report-stream ``Report``s or history rows)."""
        from mlflow.entities import Metric

        from ..registry.history import history_rows

        metrics = []
        for row in history_rows(reports):
            step = row.step if row.step is not None else self._seq
            self._seq += 1
            stamp = int(row.time.timestamp() * 1000) if row.time is not None else _now_ms()
            for key, value in row.metrics.items():
                number = _number(value)
                if number is not None and key not in ("step", "epoch"):
                    metrics.append(Metric(str(key), number, stamp, int(step)))
        for i in range(0, len(metrics), _BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + _BATCH_METRICS])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add ``tags`` to the run (allowed after it ended)."""
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)) for k, v in tags.items() if v is not None]
        if items:
            self.client.log_batch(self.run_id, tags=items)

    def end(self, failed: bool = False) -> None:
        """Mark the run FINISHED (or FAILED)."""
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")

    def lineage(self) -> dict[str, Any]:
        """What the registered version records about this run."""
        return {
            "mlflow_run_id": self.run_id,
            "mlflow_experiment_id": self.experiment_id,
            "mlflow_tracking_uri": mask(str(self.tracking_uri)) if self.tracking_uri else None,
        }


class Tracking:
    """The trackers of one fit, resolved from a trainer's ``tracking``/``callbacks``.

    Use: ``tracking = Tracking.of(tracking, callbacks)`` before anything starts (bad values
    raise there), ``with tracking.run(name, params, stream):`` around the fit, then
    ``tracking.link(name, version)`` once registered.
    """

    def __init__(self, callbacks: Sequence[MLflowCallback]) -> None:
        self.callbacks = list(callbacks)
        self.runs: list[MLflowRun] = []

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    @classmethod
    def of(cls, tracking: Any = None, callbacks: Any = None) -> Tracking:
        """Validate ``tracking`` (None or ``"mlflow"``) and ``callbacks`` (a list of
        ``pr.MLflowCallback``); ``ConfigError`` naming the value and the fix otherwise."""
        found: list[MLflowCallback] = []
        if tracking is not None:
            if tracking not in TRACKERS:
                raise ConfigError(
                    f"tracking={tracking!r} is not a known tracker; use one of {list(TRACKERS)} "
                    "or callbacks=[pr.MLflowCallback(tracking_uri=..., experiment=...)]"
                )
            _mlflow()
            found.append(MLflowCallback())
        if callbacks is not None:
            if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
                raise ConfigError(
                    f"callbacks must be a list such as [pr.MLflowCallback()], got "
                    f"{type(callbacks).__name__}"
                )
            for cb in callbacks:
                if not isinstance(cb, MLflowCallback):
                    raise ConfigError(
                        f"callbacks takes pr.MLflowCallback(...) objects, got "
                        f"{type(cb).__name__}; Ray Train's own callbacks go in "
                        "run_config=RunConfig(callbacks=[...])"
                    )
                found.append(cb)
            if found:
                _mlflow()
        return cls(found)

    def start(
        self, name: str, params: Mapping[str, Any], stream: Any = None, **kwargs: Any
    ) -> None:
        """Start one run per tracker; with ``stream`` (a ``ReportStream``), each report is
        logged as it reaches the driver."""
        for cb in self.callbacks:
            run = cb.start_run(name, params, **kwargs)
            self.runs.append(run)
            if stream is not None:
                stream.subscribe(run)

    @contextlib.contextmanager
    def fit(self, name: str, params: Mapping[str, Any], stream: Any = None) -> Iterator[Tracking]:
        """Around a fit: the runs start (reports from ``stream`` logged as they come) and
        end FINISHED, or FAILED when the fit raises. Without trackers, nothing happens."""
        if not self:
            yield self
            return
        self.start(name, params, stream)
        try:
            yield self
        except BaseException:
            self.end(failed=True)
            raise
        self.end()

    def log(self, reports: Iterable[Any]) -> None:
        """Log ``reports`` (metric dicts or ``Report``s) to every run, e.g. a fit without a
        report stream (scikit-learn: its one final report)."""
        for run in self.runs:
            run.log_reports(reports)

    def end(self, failed: bool = False) -> None:
        """End every run (FAILED when the fit raised)."""
        for run in self.runs:
            try:
                run.end(failed)
            except Exception as exc:  # the fit's own outcome matters more
                logger.warning("could not end MLflow run %s: %s", run.run_id, exc)

    def lineage(self) -> dict[str, Any]:
        """``{"tracking": {...}}`` for the version's lineage (empty without a run)."""
        return {"tracking": self.runs[0].lineage()} if self.runs else {}

    def link(self, name: str, version: int | None, **tags: Any) -> None:
        """Tag every run with the registered model ``name`` and ``version`` (and ``tags``)."""
        for run in self.runs:
            run.set_tags(
                {"pinnacle.model": name, "pinnacle.version": version, **tags}
                if version is not None
                else {"pinnacle.model": name, "pinnacle.registered": "false", **tags}
            )


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``params`` flattened to ``{"a.b": "value"}`` strings MLflow accepts (credentials
    masked, values shortened to MLflow's limit)."""
    out: dict[str, str] = {}
    for key, value in mask(dict(params)).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_params(value, f"{name}."))
            continue
        text = value if isinstance(value, str) else repr(value)
        out[name] = text if len(text) <= _PARAM_CHARS else text[: _PARAM_CHARS - 3] + "..."
    return out


def _experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name)
    except MlflowException:  # created concurrently (another trial, another fit)
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
