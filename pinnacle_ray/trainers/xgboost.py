"""``XGBoostTrainer``: distributed XGBoost on Ray Train, fed by datastore queries.

Runs ``ray.train.xgboost.XGBoostTrainer`` the Ray Train V2 way: every worker runs
``xgboost.train`` on its shard with Ray's report callback, and Ray sets up XGBoost's
collective so the workers build one model. XGBoost holds its data in memory anyway, so the
query is read once into Ray's object store first (all CPUs reading in parallel), then shared
out among the workers, each taking an equal contiguous range of the rows from the blocks
(zero-copy on their node): nothing competes with the workers for CPUs while they boost.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
import ray.data
import ray.train
import xgboost as xgb
from ray.train import RunConfig, ScalingConfig
from ray.train.xgboost import XGBoostTrainer as RayXGBoostTrainer

from .._internal.names import validate_name
from ..errors import ConfigError, NonFiniteValues, NonNumericFeature, TooFewRows
from ..registry.xgboost_flavor import MODEL_FILE, is_classification, load_booster
from .base import (
    RESUME_KEY,
    TrainResult,
    fit_reports,
    fit_run_config,
    plan_for,
    raise_worker_error,
    ray_train_loop,
    registered_model,
    reported_checkpoints,
    run_lineage,
    run_reported,
    store_of,
)
from .devices import xgboost_device_params
from .features import check_feature_list, count_non_finite, non_finite_message
from .finish import finish_run
from .holdout import check_fraction, split_by_key
from .params import TrainerParams
from .registration import RunRecord, json_safe
from .storage import RegisteredCheckpoint, decide, with_run_storage
from .submission import Submittable, records_job
from .tabular import (
    QueryFacts,
    block_refs,
    check_query,
    distinct_values,
    query_datasets,
    read_once,
    require_classes,
)
from .tracking import Tracking
from .xgboost_loop import XGBoostSpec, xgboost_loop

__all__ = ["XGBoostTrainer"]

# XGBoost's evaluation metric when params name none, by objective.
_DEFAULT_EVAL_METRIC = {
    "reg:squarederror": "rmse",
    "reg:logistic": "rmse",
    "reg:absoluteerror": "mae",
    "reg:squaredlogerror": "rmsle",
    "reg:pseudohubererror": "mphe",
    "binary:logistic": "logloss",
    "binary:logitraw": "logloss",
    "binary:hinge": "error",
    "multi:softmax": "mlogloss",
    "multi:softprob": "mlogloss",
    "count:poisson": "poisson-nloglik",
    "reg:gamma": "gamma-nloglik",
}
# Metrics where larger is better (XGBoost maximizes these when early stopping, too).
_SCRATCH_PREFIX = "pinnacle-xgb-best-"
_MAXIMIZED = ("auc", "aucpr", "map", "ndcg", "pre")


class XGBoostTrainer(TrainerParams, Submittable):
    """Train an XGBoost booster on Ray Train workers with datastore queries as datasets.

    Example::

        trainer = pr.XGBoostTrainer(
            params={"objective": "binary:logistic", "tree_method": "hist", "max_depth": 4},
            features=["rooms", "area"], label="sold", num_boost_round=100,
            early_stopping_rounds=10, scaling_config=ScalingConfig(num_workers=2),
            name="will-sell",
        )
        result = trainer.fit(train=store.table("houses", key="id"))
        store.models.load("will-sell", handle="best").predict_proba(frame)

    Validation uses ``valid=`` or a deterministic ``valid_fraction`` of the rows by key hash;
    with ``early_stopping_rounds`` the ``best`` handle is the booster cut at its best round.
    Metrics are reported every ``report_every`` rounds, by default at most about once a
    second (each Ray Train report waits for the controller's next poll); set
    ``report_every=1`` for a report per round, e.g. for a Tune scheduler counting reports.
    NULL/NaN features are XGBoost's missing values; text features become categories with
    ``enable_categorical=True``. ``fit(resume_from="<name>")`` adds ``num_boost_round`` rounds
    to a registered booster.
    ``tracking="mlflow"`` or ``callbacks=[pr.MLflowCallback(...)]`` log the run to MLflow
    (params, every report at its step, the registered version as tags); see
    docs/tracking.md.
    """

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        *,
        features: list[str],
        label: str,
        num_boost_round: int = 10,
        early_stopping_rounds: int | None = None,
        enable_categorical: bool = False,
        valid_fraction: float | None = 0.2,
        seed: int = 0,
        checkpoint_frequency: int = 0,
        report_every: int | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        name: str | None = None,
        tracking: str | None = None,
        callbacks: list[Any] | None = None,
    ) -> None:
        check_feature_list(features)
        if not isinstance(label, str) or not label:
            raise ConfigError(f"label must be a column name, got {label!r}")
        for field, value, low in (
            ("num_boost_round", num_boost_round, 1),
            ("checkpoint_frequency", checkpoint_frequency, 0),
            ("report_every", 1 if report_every is None else report_every, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"{field} must be an integer >= {low}, got {value!r}")
        if early_stopping_rounds is not None and (
            not isinstance(early_stopping_rounds, int) or early_stopping_rounds < 1
        ):
            raise ConfigError(
                f"early_stopping_rounds must be a positive integer or None, got "
                f"{early_stopping_rounds!r}"
            )
        check_fraction(valid_fraction)
        if params is not None and not isinstance(params, dict):
            raise ConfigError(
                f"params must be a dict of XGBoost parameters, got {type(params).__name__}"
            )
        Tracking.of(tracking, callbacks)  # a bad tracker or callback is refused now
        if name is not None:
            validate_name(name)
        self.params = params
        self.features = features
        self.label = label
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.enable_categorical = enable_categorical
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.checkpoint_frequency = checkpoint_frequency
        self.report_every = report_every
        self.scaling_config = scaling_config
        self.run_config = run_config
        self.name = name
        self.tracking = tracking
        self.callbacks = callbacks

    @property
    def scaling(self) -> ScalingConfig:
        """The ``ScalingConfig`` a fit starts its Ray Train workers with (the one given,
        else one worker)."""
        return self.scaling_config or ScalingConfig(num_workers=1)

    @property
    def _booster_params(self) -> dict[str, Any]:
        """``params`` with the trainer's default ``tree_method="hist"``."""
        return {"tree_method": "hist", **dict(self.params or {})}

    @property
    def _features(self) -> list[str]:
        return list(self.features)

    def _default_name(self) -> str:
        return "xgboost"

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
        """Boost on ``train`` (a query or ``ray.data.Dataset``), evaluating on ``valid``.

        ``resume_from="<name>"`` continues that registered booster (its ``handle``) with
        ``num_boost_round`` more rounds, e.g. on rows added since; it is recorded as parent.
        """
        tracking = Tracking.of(self.tracking, self.callbacks)
        stream, display = fit_reports(progress, self.name, unit="round")
        facts = self._check(train, "train")
        if valid is not None:
            self._check(valid, "valid")
        # A CUDA device on CPU-only workers is refused here, before any read.
        xgboost_device_params(self._booster_params, bool(self.scaling.use_gpu))
        plan = plan_for(self.scaling)
        store = store_of(train)
        storage = decide(store, self.run_config, what=f"fit of {self.name!r}")
        start, parent, done = self._resume(store, resume_from, version, handle)
        # Read with every CPU before the workers take theirs.
        read = {role: read_once(ds) for role, ds in query_datasets(train, valid, 1.0).items()}
        workers = plan.scaling_config.max_workers  # elastic: every worker that may start
        rows = read["train"].count()
        if rows < workers:
            raise TooFewRows(
                f"the training query has {rows} row(s) for {workers} workers; every worker "
                "needs rows. Use fewer workers (ScalingConfig(num_workers=...))"
            )
        for role, dataset in read.items():
            bad = count_non_finite(dataset, [self.label])
            if bad:
                raise NonFiniteValues(non_finite_message(bad, f"the {role} query's label"))
        params = self._params(read["train"], plan.scaling_config)
        if "valid" not in read and self.valid_fraction is not None and facts.key is not None:
            read["train"], read["valid"] = split_by_key(
                read["train"], facts.key, self.valid_fraction, self.seed, num_cpus=plan.read_cpus
            )
        if self.early_stopping_rounds is not None and "valid" not in read:
            raise ConfigError(
                "early_stopping_rounds needs validation rows: pass valid=<query>, or a key= on "
                "the training query with valid_fraction set"
            )
        spec = XGBoostSpec(
            params=params,
            features=self._features,
            label=self.label,
            total_rounds=done + self.num_boost_round,
            early_stopping_rounds=self.early_stopping_rounds,
            checkpoint_frequency=self.checkpoint_frequency,
            report_every=self.report_every,
            categories=self._categories(read["train"], facts),
            has_valid="valid" in read,
        )
        # The workers take their rows straight from the blocks read above: the data is in
        # the object store already, so no streaming split (and no dataset-manager and split
        # coordinator actors to start) stands between them and it.
        config: dict[str, Any] = {
            "spec": spec,
            "blocks": {role: block_refs(dataset) for role, dataset in read.items()},
        }
        if start is not None:
            config[RESUME_KEY] = start
        display.expect(steps=spec.total_rounds)
        trainer = RayXGBoostTrainer(
            **ray_train_loop(xgboost_loop, config),
            scaling_config=plan.scaling_config,
            run_config=stream.attach(
                with_run_storage(fit_run_config(self.run_config, self.name), storage)
            ),
        )
        try:
            with tracking.fit(self.name, self._config_record(spec, plan.scaling_config), stream):
                result = run_reported(trainer, stream, display)
        except Exception as exc:
            raise_worker_error(exc)
            raise
        reported = reported_checkpoints(result)
        listen = _listened(result.metrics or {})
        mode = "max" if listen and listen.split("/")[-1].split("@")[0] in _MAXIMIZED else "min"
        best = _best_round(reported, listen, result)
        if best is not None:
            reported = sorted([*reported, best], key=lambda r: r[1].get("step", 0))
        record = RunRecord(
            self.name,
            "xgboost",
            reported,
            meta=self._meta(spec),
            listen=listen,
            mode=mode,
            keep_epochs=0,
            config=self._config_record(spec, plan.scaling_config),
            lineage={
                **run_lineage(train, valid, facts.holdout(self.valid_fraction, self.seed)),
                **tracking.lineage(),
            },
            parent=parent,
            history=stream.reports,
        )
        return finish_run(
            record,
            store,
            tracking,
            register=register,
            metrics=dict(result.metrics or {}),
            checkpoint=result.checkpoint,
            path=getattr(result, "path", None),
            ray_result=result,
            release_folder=self.run_config is None,  # the registry has its checkpoints
            # The best round's scratch copy: registered (copied) or failed, not needed.
            after_register=lambda: _remove_scratch(best),
        )

    def reported_metrics(self, train: Any, valid: Any = None) -> set[str] | None:
        """The metric names a fit on ``train``/``valid`` reports (None when XGBoost's default
        evaluation metric for the objective is not known here): what a sweep may optimize."""
        booster_params = self._booster_params
        metrics = booster_params.get("eval_metric")
        if metrics is None:
            objective = booster_params.get("objective", "reg:squarederror")
            metrics = _DEFAULT_EVAL_METRIC.get(objective)
            if metrics is None:
                return None
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        held = self.valid_fraction is not None and getattr(train, "key", None) is not None
        sets = ["train", "valid"] if valid is not None or held else ["train"]
        return {f"{s}/{m}" for s in sets for m in names} | {"round", "step"}

    # -- checks before any read ------------------------------------------------------------
    def _check(self, query: Any, role: str) -> QueryFacts:
        facts = check_query(query, role, self._features, self.label, any_type=self._features)
        text = facts.text_columns(self._features)
        if text and not self.enable_categorical:
            raise NonNumericFeature(
                f"feature column(s) {text} hold text; set enable_categorical=True to train on "
                "them as categories, encode them as numbers in the query, or drop them"
            )
        return facts

    def _params(self, train: ray.data.Dataset, scaling: ScalingConfig) -> dict[str, Any]:
        """The booster parameters, completed from the data: classes checked, ``num_class``
        for multi-class objectives, one thread per worker CPU."""
        params = self._booster_params
        objective = params.get("objective", "reg:squarederror")
        if is_classification(objective):
            classes = distinct_values(train, self.label)
            require_classes(classes, self.label, "the training query")
            if objective.startswith("multi:"):
                wrong = [c for c in classes if not float(c).is_integer() or c < 0]
                if wrong:
                    raise NonNumericFeature(
                        f"label {self.label!r} holds {wrong[:5]}; multi-class XGBoost needs "
                        "class numbers 0..k-1: map the classes to numbers in the query"
                    )
                params.setdefault("num_class", int(max(classes)) + 1)
            elif set(classes) - {0, 1}:
                raise NonNumericFeature(
                    f"label {self.label!r} holds {classes[:5]}; {objective} needs 0/1 labels"
                )
        cpus = (scaling.resources_per_worker or {}).get("CPU", 1)
        params.setdefault("nthread", max(1, int(cpus)))
        return xgboost_device_params(params, bool(scaling.use_gpu))

    def _categories(self, train: ray.data.Dataset, facts: QueryFacts) -> dict[str, list[Any]]:
        """Every text feature's categories, from all rows: the workers must agree on codes."""
        text = facts.text_columns(self._features) if self.enable_categorical else []
        return {column: distinct_values(train, column) for column in text}

    def _resume(
        self, store: Any, name: str | None, version: int | None, handle: str
    ) -> tuple[RegisteredCheckpoint | None, dict[str, Any] | None, int]:
        if name is None:
            return None, None, 0
        model, parent = registered_model(store, name, version, handle, self._features)
        done = model.booster.num_boosted_rounds()
        start = RegisteredCheckpoint.of(store, name, parent["version"], handle)
        return start, {**parent, "rounds": done}, done

    # -- what is stored with the version ---------------------------------------------------
    def _meta(self, spec: XGBoostSpec) -> dict[str, Any]:
        return json_safe(
            {
                "framework": "xgboost",
                "features": self._features,
                "label": self.label,
                "objective": spec.params.get("objective", "reg:squarederror"),
                "categories": spec.categories,
                "xgboost_version": xgb.__version__,
            }
        )

    def _config_record(self, spec: XGBoostSpec, scaling: ScalingConfig) -> dict[str, Any]:
        return json_safe(
            {
                "params": spec.params,
                "num_boost_round": self.num_boost_round,
                "total_rounds": spec.total_rounds,
                "early_stopping_rounds": self.early_stopping_rounds,
                "enable_categorical": self.enable_categorical,
                "scaling": {
                    "num_workers": scaling.num_workers,
                    "resources_per_worker": scaling.resources_per_worker,
                },
            }
        )


def _listened(metrics: dict[str, Any]) -> str | None:
    """The metric XGBoost early-stops on: the last one reported for the last eval set."""
    valid = [k for k in metrics if k.startswith("valid/")]
    return valid[-1] if valid else None


def _remove_scratch(best: tuple[ray.train.Checkpoint, dict[str, Any]] | None) -> None:
    """Remove the best-round booster's own temp folder (made when the run had no folder)."""
    if best is not None and Path(best[0].path).name.startswith(_SCRATCH_PREFIX):
        shutil.rmtree(best[0].path, ignore_errors=True)


def _best_round(
    reported: list[tuple[ray.train.Checkpoint, dict[str, Any]]], listen: str | None, result: Any
) -> tuple[ray.train.Checkpoint, dict[str, Any]] | None:
    """The final booster cut at its best round, when early stopping found one before the
    end: stored beside the run's own checkpoints, in the run's storage (so it lives as long
    as they do, e.g. until a sweep registers its best trial, and a sweep's driver on another
    node reads it as it reads them)."""
    if not reported or listen is None:
        return None
    checkpoint, _ = reported[-1]
    with checkpoint.as_directory() as directory:
        booster = load_booster(directory)
    best = booster.attr("best_iteration")
    score = booster.attr("best_score")
    if best is None or score is None or int(best) + 1 >= booster.num_boosted_rounds():
        return None
    rounds = int(best) + 1
    best_metrics = {listen: float(score), "round": rounds, "step": rounds}
    filesystem, path = getattr(result, "filesystem", None), getattr(result, "path", None)
    if filesystem is None or path is None:  # no run folder: a folder of its own
        scratch = tempfile.mkdtemp(prefix=_SCRATCH_PREFIX)  # removed once registered
        booster[:rounds].save_model(f"{scratch}/{MODEL_FILE}")
        return ray.train.Checkpoint.from_directory(scratch), best_metrics
    target = f"{path.rstrip('/')}/best_round"
    with tempfile.TemporaryDirectory(prefix=_SCRATCH_PREFIX) as scratch:
        booster[:rounds].save_model(f"{scratch}/{MODEL_FILE}")
        filesystem.create_dir(target)
        pafs.copy_files(scratch, target, destination_filesystem=filesystem)
    return ray.train.Checkpoint(target, filesystem=filesystem), best_metrics
