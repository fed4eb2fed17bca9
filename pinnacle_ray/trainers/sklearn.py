"""``SklearnTrainer``: any scikit-learn estimator or pipeline, fit as a Ray task on a query.

scikit-learn needs its whole training set in one process, so the trainer says so: it
estimates the size before reading and refuses what would not fit, reads the shards in
parallel into Ray's object store, then fits in one Ray task holding ``num_cpus`` CPUs (joblib
inside uses them). Estimators with ``partial_fit`` can instead stream batches from the shards
(``incremental=True``), and memory stays flat however large the table grows.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray
import ray.data
import ray.train
import sklearn
from ray.train import RunConfig
from sklearn.base import clone

from .._internal.names import default_name, validate_name
from .._internal.runtime import cluster_cpus, ensure_ray, quiet_execution
from ..errors import ConfigError, DataTooLarge, NonNumericFeature, ResourceError
from ..registry.sklearn_flavor import save_model
from .base import (
    TrainResult,
    default_run_config,
    progress_shown,
    registered_model,
    run_lineage,
    store_of,
)
from .caching import estimated_bytes
from .features import check_feature_list
from .finish import finish_run
from .holdout import check_fraction
from .params import TrainerParams
from .progress import TaskPhases
from .registration import RunRecord, json_safe
from .report_stream import Report
from .sklearn_fit import FitSpec, fit_and_serialize, fit_in_memory, fit_incremental
from .sklearn_metrics import estimator_kind
from .storage import decide, with_run_storage
from .submission import Submittable, records_job
from .tabular import QueryFacts, check_query, query_datasets, read_once
from .tracking import Tracking

__all__ = ["SklearnTrainer"]

# What the progress line names while a fit runs (scoring is announced by the fit task).
_PHASES = ("reading", "fitting", "scoring")

# The data is held about three times while fitting: Arrow blocks, the pandas frame, and
# the float64 array scikit-learn converts it to.
COPIES_WHILE_FITTING = 3
# Streaming reads beside an incremental fit need at least two tasks' worth of this.
MIN_READ_CPU = 0.1


class SklearnTrainer(TrainerParams, Submittable):
    """Fit a scikit-learn estimator (or ``Pipeline``) on a datastore query, as a Ray task.

    Example::

        trainer = pr.SklearnTrainer(
            make_pipeline(StandardScaler(), LogisticRegression()),
            features=["rooms", "area"], label="sold", name="will-sell", num_cpus=2,
        )
        result = trainer.fit(train=store.table("houses", key="id"))
        result.metrics["valid/accuracy"]
        store.models.load("will-sell").predict_proba(frame)

    Validation metrics come from ``valid=`` or, without it, from a deterministic
    ``valid_fraction`` of the rows chosen by hashing the query's key (``valid_fraction=None``
    scores on the training rows instead). ``incremental=True`` streams ``batch_size`` rows at a
    time into ``partial_fit`` for ``epochs`` passes.
    ``tracking="mlflow"`` or ``callbacks=[pr.MLflowCallback(...)]`` log the run to MLflow
    (params, every report at its step, the registered version as tags); see
    docs/tracking.md.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        features: list[str],
        label: str | None = None,
        name: str | None = None,
        tracking: str | None = None,
        callbacks: list[Any] | None = None,
        fit_kwargs: dict[str, Any] | None = None,
        num_cpus: float | None = None,
        incremental: bool = False,
        batch_size: int = 10_000,
        epochs: int = 1,
        valid_fraction: float | None = 0.2,
        seed: int = 0,
        max_memory_share: float = 0.5,
        run_config: RunConfig | None = None,
    ) -> None:
        if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
            raise ConfigError(
                f"estimator must be a scikit-learn estimator or Pipeline (with fit and "
                f"get_params), got {type(estimator).__name__}"
            )
        check_feature_list(features)
        kind = estimator_kind(estimator)
        if label is None and kind in ("classifier", "regressor"):
            raise ConfigError(
                f"{type(estimator).__name__} is a {kind} and needs label=<column>; only "
                "clusterers and transformers fit without one"
            )
        if incremental and not hasattr(estimator, "partial_fit"):
            raise ConfigError(
                f"incremental=True needs an estimator with partial_fit (SGDClassifier, "
                f"SGDRegressor, MiniBatchKMeans, MultinomialNB, ...); "
                f"{type(estimator).__name__} has none"
            )
        for field, value in (("batch_size", batch_size), ("epochs", epochs)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{field} must be a positive integer, got {value!r}")
        check_fraction(valid_fraction)
        if not 0 < max_memory_share <= 1:
            raise ConfigError(f"max_memory_share must be in (0, 1], got {max_memory_share!r}")
        if num_cpus is not None and not num_cpus > 0:
            raise ConfigError(f"num_cpus must be a positive number or None, got {num_cpus!r}")
        if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
            raise ConfigError(
                "fit_kwargs must be a dict of keyword arguments for the estimator's fit, got "
                f"{type(fit_kwargs).__name__}"
            )
        Tracking.of(tracking, callbacks)  # a bad tracker or callback is refused now
        if name is not None:
            validate_name(name)
        self.estimator = estimator
        self.features = features
        self.label = label
        self.name = name
        self.tracking = tracking
        self.callbacks = callbacks
        self.fit_kwargs = fit_kwargs
        self.num_cpus = num_cpus
        self.incremental = incremental
        self.batch_size = batch_size
        self.epochs = epochs
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.max_memory_share = max_memory_share
        self.run_config = run_config

    @property
    def scaling(self) -> None:
        """None: a fit is one Ray task holding ``num_cpus``, not Ray Train workers."""
        return None

    @property
    def kind(self) -> str:
        """What the estimator is: ``classifier``, ``regressor``, ``clusterer`` or
        ``transformer``."""
        return estimator_kind(self.estimator)

    @property
    def _features(self) -> list[str]:
        return list(self.features)

    def _default_name(self) -> str:
        return default_name(type(self.estimator).__name__.lower(), "sklearn")

    @records_job
    def fit(
        self,
        train: Any,
        valid: Any = None,
        *,
        register: bool = True,
        resume_from: str | None = None,
        version: int | None = None,
        handle: str = "latest",
        progress: bool | None = None,
    ) -> TrainResult:
        """Fit on ``train`` (a query or ``ray.data.Dataset``), score on ``valid``, register.

        ``resume_from="<name>"`` continues a registered incremental model with more
        ``partial_fit`` passes (e.g. on rows added since), recorded as its parent.
        ``progress`` shows a live line naming the phase (reading, fitting, scoring) on
        stderr; None (default): only when stderr is a terminal.
        """
        with TaskPhases(self.name, _PHASES, enabled=progress_shown(progress)) as phases:
            return self._fit(
                train,
                valid,
                register=register,
                resume_from=resume_from,
                version=version,
                handle=handle,
                phases=phases,
            )

    def _fit(
        self,
        train: Any,
        valid: Any,
        *,
        register: bool,
        resume_from: str | None,
        version: int | None,
        handle: str,
        phases: TaskPhases,
    ) -> TrainResult:
        tracking = Tracking.of(self.tracking, self.callbacks)
        facts = self._check(train, "train")
        if valid is not None:
            self._check(valid, "valid")
        num_cpus = self._cpus()
        store = store_of(train)
        storage = decide(store, self.run_config, what=f"fit of {self.name!r}")
        estimator, parent = self._start(store, resume_from, version, handle)
        if not self.incremental:
            self._check_memory(facts)
        spec = FitSpec(
            features=self._features,
            label=self.label,
            key=facts.key,
            kind=self.kind,
            fit_kwargs=dict(self.fit_kwargs or {}),
            num_cpus=num_cpus,
            batch_size=self.batch_size,
            epochs=self.epochs,
            valid_fraction=None if valid is not None else self.valid_fraction,
            seed=self.seed,
            note=phases.notifier(),
        )
        started = time.perf_counter()
        phases.phase("reading")
        if self.incremental:
            # The task holds its CPUs while it streams; the reads get what is left.
            left = cluster_cpus() - num_cpus
            if left < 2 * MIN_READ_CPU:
                raise ResourceError(
                    f"incremental fitting holds num_cpus={num_cpus:g} of the cluster's "
                    f"{cluster_cpus():g} CPUs while it streams, leaving {left:g} to read the "
                    f"data, which needs {2 * MIN_READ_CPU:g}; lower num_cpus"
                )
            datasets = query_datasets(train, valid, min(1.0, left / 2), silent=True)
            task = fit_incremental
        else:
            with quiet_execution():  # a sweep's trial hands on what the sweep read
                datasets = {
                    role: read_once(ds).to_arrow_refs()
                    for role, ds in query_datasets(train, valid, 1.0).items()
                }
            task = fit_in_memory
        remote = ray.remote(fit_and_serialize).options(num_cpus=num_cpus, max_retries=0)
        phases.phase("fitting")
        with tracking.fit(self.name, self._config_record(num_cpus)):
            try:
                estimator, metrics, serialized = ray.get(
                    remote.remote(task, estimator, datasets["train"], datasets.get("valid"), spec)
                )
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                cause.add_note(f"(raised in the scikit-learn fit task of {self.name!r})")
                raise cause from None
            metrics["fit_seconds"] = round(time.perf_counter() - started, 3)
            phases.finish()
            # One report: the fit's scores, when it ended.
            reports = [Report.of(metrics, has_checkpoint=True)]
            tracking.log(reports)
        run_config = with_run_storage(self.run_config or default_run_config(self.name), storage)
        run_dir, checkpoint, meta = _save_checkpoint(
            run_config, run_config.name or self.name, estimator, self._meta(estimator), serialized
        )
        record = RunRecord(
            self.name,
            "sklearn",
            [(checkpoint, metrics)],
            meta=meta,
            listen=None,
            mode="min",
            keep_epochs=0,
            config=self._config_record(num_cpus),
            lineage={
                **run_lineage(train, valid, facts.holdout(self.valid_fraction, self.seed)),
                **tracking.lineage(),
            },
            parent=parent,
            history=reports,
        )
        return finish_run(
            record,
            store,
            tracking,
            register=register,
            metrics=metrics,
            checkpoint=checkpoint,
            path=run_dir,
        )

    def reported_metrics(self, train: Any, valid: Any = None) -> set[str]:
        """The metric names a fit on ``train``/``valid`` reports: what a sweep may optimize."""
        held = self.valid_fraction is not None and getattr(train, "key", None) is not None
        prefix = "valid" if valid is not None or held else "train"
        scores = {
            "classifier": ["accuracy", "f1"]
            + (["roc_auc"] if hasattr(self.estimator, "predict_proba") else []),
            "regressor": ["rmse", "mae", "r2"],
            "clusterer": ["silhouette"] if hasattr(self.estimator, "predict") else [],
        }.get(self.kind, [])
        if hasattr(self.estimator, "score"):
            scores.append("score")
        return {f"{prefix}/{m}" for m in [*scores, "rows"]} | {"train/rows", "fit_seconds"}

    # -- checks before any read ------------------------------------------------------------
    def _check(self, query: Any, role: str) -> QueryFacts:
        columns = [*self.features, *([self.label] if self.label else [])]
        facts = check_query(query, role, self._features, self.label, any_type=columns)
        text = facts.text_columns(columns)
        if self.label in text and self.kind != "classifier":
            raise NonNumericFeature(
                f"label column {self.label!r} holds text, which a {self.kind} cannot predict; "
                "use a classifier or a numeric label"
            )
        text_features = [c for c in text if c != self.label]
        if text_features and not _encodes_text(self.estimator):
            raise NonNumericFeature(
                f"feature column(s) {text_features} hold text and {type(self.estimator).__name__} "
                "has no encoder for them; put one in a pipeline, e.g. make_pipeline("
                f"make_column_transformer((OneHotEncoder(handle_unknown='ignore'), "
                f"{text_features}), remainder='passthrough'), estimator), or drop them"
            )
        return facts

    def _cpus(self) -> float:
        wanted = float(self.num_cpus or 1)
        largest = _largest_node("CPU")
        if wanted > largest:
            raise ResourceError(
                f"num_cpus={wanted:g}, but the largest node has {largest:g} CPUs and a fit runs "
                "in one process on one node; lower num_cpus"
            )
        return wanted

    def _check_memory(self, facts: QueryFacts) -> None:
        if facts.schema is None or facts.rows is None:
            return
        columns = [*self.features, *([self.label] if self.label else [])]
        schema = pa.schema([facts.schema.field(c) for c in columns])
        need = estimated_bytes(schema, facts.rows) * COPIES_WHILE_FITTING
        memory = _largest_node("memory")
        allowed = self.max_memory_share * memory
        if memory and need > allowed:
            raise DataTooLarge(
                f"fitting {type(self.estimator).__name__} holds the whole training set in one "
                f"process: {facts.rows:,} rows x {len(columns)} columns need about "
                f"{need / 2**30:.2f} GiB, over max_memory_share={self.max_memory_share:g} of the "
                f"{memory / 2**30:.1f} GiB a task can get. Use an estimator with partial_fit and "
                "incremental=True, pr.XGBoostTrainer (spreads rows over workers), a sample of "
                "the rows, or raise max_memory_share"
            )

    # -- the estimator to fit --------------------------------------------------------------
    def _start(
        self, store: Any, name: str | None, version: int | None, handle: str
    ) -> tuple[Any, dict[str, Any] | None]:
        if name is None:
            return clone(self.estimator), None
        if not self.incremental:
            raise ConfigError(
                "resume_from= continues a model with more partial_fit passes; set "
                "incremental=True (a full fit would start from scratch anyway)"
            )
        model, parent = registered_model(store, name, version, handle, self._features)
        estimator = getattr(model, "estimator", None)
        if type(estimator) is not type(self.estimator):
            raise ConfigError(
                f"{name} version {parent['version']} is a {type(estimator).__name__}, not a "
                f"{type(self.estimator).__name__}; resume it with the same estimator"
            )
        return estimator, parent

    # -- what is stored with the version ---------------------------------------------------
    def _meta(self, estimator: Any) -> dict[str, Any]:
        classes = getattr(estimator, "classes_", None)
        return json_safe(
            {
                "framework": "sklearn",
                "features": self._features,
                "label": self.label,
                "kind": self.kind,
                "estimator": _qualname(estimator),
                "classes": None if classes is None else np.asarray(classes).tolist(),
                "sklearn_version": sklearn.__version__,
            }
        )

    def _config_record(self, num_cpus: float) -> dict[str, Any]:
        return json_safe(
            {
                "estimator": _qualname(self.estimator),
                "params": _params(self.estimator),
                "fit_kwargs": dict(self.fit_kwargs or {}),
                "num_cpus": num_cpus,
                "incremental": self.incremental,
                "batch_size": self.batch_size if self.incremental else None,
                "epochs": self.epochs if self.incremental else None,
                "seed": self.seed,
            }
        )


def _encodes_text(estimator: Any) -> bool:
    """Whether some step of ``estimator`` turns text or categories into numbers."""
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.utils import get_tags

    parts = [estimator, *estimator.get_params(deep=True).values()]
    for part in parts:
        if not hasattr(part, "fit") or isinstance(part, type):
            continue
        if isinstance(part, FunctionTransformer):
            return True
        try:
            tags = get_tags(part).input_tags
        except (AttributeError, TypeError, ValueError):
            continue
        if tags.categorical or tags.string:
            return True
        if getattr(part, "categorical_features", None) == "from_dtype":  # HistGradientBoosting
            return True
    return False


def _largest_node(resource: str) -> float:
    ensure_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return max((float(n["Resources"].get(resource, 0)) for n in nodes), default=0.0)


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _params(estimator: Any) -> dict[str, Any]:
    """The estimator's hyper-parameters, nested steps as their class names."""
    out = {}
    for key, value in estimator.get_params(deep=True).items():
        out[key] = _qualname(value) if hasattr(value, "get_params") else value
    return out


def _save_checkpoint(
    run_config: RunConfig,
    run_name: str,
    estimator: Any,
    meta: dict[str, Any],
    serialized: tuple[bytes, list[str]] | None = None,
) -> tuple[str, ray.train.Checkpoint, dict[str, Any]]:
    """Save the fitted estimator as the run's checkpoint in the run's storage (a local
    folder, or the shared storage every node reaches, e.g. for a sweep whose trials run on
    other nodes): the run's folder, the checkpoint and the meta written with it."""
    filesystem = run_config.storage_filesystem
    if filesystem is None:
        path = str(run_config.storage_path or "~/ray_results")
        if "://" in path:
            filesystem, path = pafs.FileSystem.from_uri(path)
        else:
            filesystem, path = pafs.LocalFileSystem(), str(Path(path).expanduser())
    else:
        path = str(run_config.storage_path)
    run_dir = f"{path.rstrip('/')}/{run_name}"
    target = f"{run_dir}/checkpoint_000000"
    if isinstance(filesystem, pafs.LocalFileSystem):
        meta = save_model(Path(target), estimator, meta, serialized)
        return run_dir, ray.train.Checkpoint.from_directory(target), meta
    with tempfile.TemporaryDirectory(prefix="pinnacle-sklearn-") as scratch:
        meta = save_model(Path(scratch), estimator, meta, serialized)
        filesystem.create_dir(target)
        pafs.copy_files(scratch, target, destination_filesystem=filesystem)
    return run_dir, ray.train.Checkpoint(target, filesystem=filesystem), meta
