"""``TorchTrainer``: torch on Ray Train, fed by datastore queries, registered when done.

Two ways, one class: hand it a ``train_loop_per_worker`` (plain Ray Train code), or a
``model`` and an ``objective`` and it runs the managed loop (DDP, validation, checkpoints,
early stopping) for you.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import ray
import ray.data
import ray.train
import ray.train.torch
import torch
from ray.data.dataset import MaterializedDataset
from ray.train import RunConfig, ScalingConfig

from .._internal.names import default_name, validate_name
from ..errors import ConfigError, MetricNotReported, NonFiniteValues
from ..registry.code_refs import import_path, resolve
from ..registry.torch_flavor import check_compatible, model_meta
from ..registry.torch_inputs import check_signature
from .base import (
    RESUME_KEY,
    TrainResult,
    datasets_for,
    fit_reports,
    fit_run_config,
    plan_for,
    raise_worker_error,
    ray_train_loop,
    reported_checkpoints,
    run_lineage,
    run_reported,
    store_of,
)
from .caching import estimated_bytes, roles_to_cache
from .checkpoint import MODEL_FILE, STATE_FILE
from .early_stopping import EarlyStopping
from .features import check_feature_list, count_non_finite, non_finite_message
from .finish import finish_run
from .holdout import split_by_key
from .ingest import ingest_config
from .objectives import resolve_objective
from .params import TrainerParams
from .registration import RunRecord, json_safe
from .resources import ResourcePlan
from .retention import Retention
from .shuffling import check_shuffle
from .storage import RegisteredCheckpoint, decide, with_run_storage
from .submission import Submittable, records_job
from .tabular import check_query
from .torch_loop import LoopSettings, managed_loop, optimizer_class, resume_position
from .torch_options import check_function, check_metric_values, loader_settings
from .torch_step import (
    check_accumulation,
    check_grad_clip_norm,
    check_precision,
    check_scheduler,
)
from .tracking import Tracking

__all__ = ["TorchTrainer"]

logger = logging.getLogger("pinnacle_ray.trainers")

_MANAGED_KNOWN = ("train/loss", "valid/loss", "valid/accuracy")
# The seed's (SuperDuperDB's) managed-loop parameters: nothing a custom loop can use.
_MANAGED_ONLY = (
    "transform",
    "collate_fn",
    "signature",
    "metric_values",
    "loader_kwargs",
    "prefetch_size",
    "prefetch_factor",
    "preprocess",
    "postprocess",
)
# The managed loop's step options: a custom loop runs its own steps.
_STEP_OPTIONS = (
    "precision",
    "grad_clip_norm",
    "accumulate_grad_batches",
    "scheduler_cls",
    "scheduler_kwargs",
    "scheduler_interval",
)


# listen's default: "valid/loss" for the managed loop, nothing for a custom loop. None
# turns listening (validation, early stopping, the "best" handle) off.
class _Auto:
    """``listen``'s default. Kept as given, it travels with the trainer (pickled to a Ray
    job or a Tune trial), so it pickles by name: it unpickles as this one object."""

    def __repr__(self) -> str:
        return "'auto'"

    def __reduce__(self) -> str:
        return "_AUTO"


_AUTO: Any = _Auto()


class TorchTrainer(TrainerParams, Submittable):
    """Train a torch model on Ray Train with datastore queries as its datasets.

    Ray style — plain Ray Train code runs unchanged inside the loop::

        def loop(config):
            shard = ray.train.get_dataset_shard("train")
            model = ray.train.torch.prepare_model(torch.nn.Linear(10, 1))
            ...
            pr.report({"loss": loss}, model=model, optimizer=opt)   # + safe checkpoint

        pr.TorchTrainer(loop, train_loop_config={"lr": 1e-3},
                        scaling_config=ScalingConfig(num_workers=2), name="mlp").fit(train=q)

    Managed loop — no loop to write::

        pr.TorchTrainer(model=mlp, objective="mse", features=["rooms", "area"], label="price",
                        optimizer_kwargs={"lr": 1e-3}, epochs=10, validation_interval=100,
                        no_improve_then_stop=5, name="mlp").fit(train=q)

    Before every run, resources are planned (workers plus data reads fit the cluster or the
    run is refused with the numbers); after it, the run is registered in the query's
    datastore with checkpoint handles ``latest``, ``best`` and ``epoch_<n>`` (the last
    ``keep_checkpoints`` epochs); while it runs, a checkpoint no handle names any more is
    deleted, so the run folder stays bounded (docs/safety.md, "Bounded disk").
    The managed loop shuffles the rows every epoch, seeded by ``seed`` (``shuffle=False``:
    key order), and takes ``precision=``, ``grad_clip_norm=``, ``accumulate_grad_batches=``
    and ``scheduler_cls=``/``scheduler_kwargs=``; see docs/training_loop.md.
    ``tracking="mlflow"`` or ``callbacks=[pr.MLflowCallback(...)]`` log the run to MLflow
    (params, every report at its step, the registered version as tags); see
    docs/tracking.md.
    """

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any] | None = None,
        *,
        train_loop_config: dict[str, Any] | None = None,
        model: torch.nn.Module | None = None,
        objective: str | Callable[..., torch.Tensor] = "mse",
        features: list[str] | None = None,
        label: str | None = None,
        optimizer_cls: str | type[torch.optim.Optimizer] = "Adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        batch_size: int = 256,
        epochs: int | None = None,
        max_iterations: int | None = None,
        validation_interval: int | None = None,
        no_improve_then_stop: int | None = None,
        listen: str | None = _AUTO,
        mode: str | None = None,
        valid_fraction: float = 0.05,
        keep_checkpoints: int = 3,
        cache: bool | None = None,
        seed: int = 0,
        shuffle: bool = True,
        precision: str | None = None,
        grad_clip_norm: float | None = None,
        accumulate_grad_batches: int = 1,
        scheduler_cls: str | type[torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_kwargs: dict[str, Any] | None = None,
        scheduler_interval: str | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        name: str | None = None,
        tracking: str | None = None,
        callbacks: list[Any] | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        collate_fn: Callable[[dict[str, Any]], Any] | None = None,
        signature: str = "singleton",
        metric_values: dict[str, Callable[[Any, Any], float]] | None = None,
        loader_kwargs: dict[str, Any] | None = None,
        prefetch_size: int | None = None,
        prefetch_factor: int | None = None,
        preprocess: Callable[[dict[str, Any]], dict[str, Any]] | str | None = None,
        postprocess: Callable[[Any], Any] | str | None = None,
    ) -> None:
        if train_loop_per_worker is None and model is None:
            raise ConfigError(
                "pass either train_loop_per_worker (your own Ray Train loop) or model= with "
                "features= and label= (the managed loop)"
            )
        if train_loop_per_worker is not None and not callable(train_loop_per_worker):
            raise ConfigError(
                "train_loop_per_worker must be a function taking the train_loop_config, got "
                f"{type(train_loop_per_worker).__name__}"
            )
        if model is not None and not isinstance(model, torch.nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(keep_checkpoints, int) or keep_checkpoints < 0:
            raise ConfigError(f"keep_checkpoints must be an integer >= 0, got {keep_checkpoints!r}")
        if features is not None:
            check_feature_list(features)
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise ConfigError(
                "train_loop_config must be a dict (what your loop receives), got "
                f"{type(train_loop_config).__name__}"
            )
        Tracking.of(tracking, callbacks)  # a bad tracker or callback is refused now
        if name is not None:
            validate_name(name)
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.model = model
        self.objective = objective
        self.features = features
        self.label = label
        self.optimizer_cls = optimizer_cls
        self.optimizer_kwargs = optimizer_kwargs
        self.batch_size = batch_size
        self.epochs = epochs
        self.max_iterations = max_iterations
        self.validation_interval = validation_interval
        self.no_improve_then_stop = no_improve_then_stop
        self.listen = listen
        self.mode = mode
        self.valid_fraction = valid_fraction
        self.keep_checkpoints = keep_checkpoints
        # None: read small queries (<= 1/5 of the object store) once, stream the rest.
        self.cache = cache
        self.seed = seed
        self.shuffle = shuffle
        self.precision = precision
        self.grad_clip_norm = grad_clip_norm
        self.accumulate_grad_batches = accumulate_grad_batches
        self.scheduler_cls = scheduler_cls
        self.scheduler_kwargs = scheduler_kwargs
        self.scheduler_interval = scheduler_interval
        self.scaling_config = scaling_config
        self.run_config = run_config
        self.name = name
        self.tracking = tracking
        self.callbacks = callbacks
        self.transform = check_function(transform, "transform")
        self.collate_fn = collate_fn
        self.signature = signature
        self.metric_values = metric_values
        self.loader_kwargs = loader_kwargs
        self.prefetch_size = prefetch_size
        self.prefetch_factor = prefetch_factor
        self.preprocess = preprocess
        self.postprocess = postprocess
        # The rest is checked as the run will use it (the functions by import path, the
        # managed loop's settings), so a bad value is refused now, before any fit.
        self._preprocess_fn  # noqa: B018
        if self.managed:
            self.settings  # noqa: B018
        else:
            self._refuse_managed_options()
            EarlyStopping(self._listen_mode[1])  # validates mode

    @property
    def managed(self) -> bool:
        """True for the managed loop (``model=``), False for your own
        ``train_loop_per_worker``."""
        return self.train_loop_per_worker is None

    @property
    def scaling(self) -> ScalingConfig:
        """The ``ScalingConfig`` a fit starts its Ray Train workers with (the one given,
        else one worker)."""
        return self.scaling_config or ScalingConfig(num_workers=1)

    @property
    def settings(self) -> LoopSettings | None:
        """What the managed loop runs with, resolved and checked from the parameters (None
        for your own loop); ``ConfigError`` for a value the loop cannot take."""
        if not self.managed:
            return None
        metrics = check_metric_values(self.metric_values)
        loader = loader_settings(
            self.loader_kwargs, self.batch_size, self.prefetch_size, self.prefetch_factor
        )
        batch_size = loader.pop("batch_size")
        if self.shuffle is False and loader["local_shuffle_buffer_size"] is not None:
            raise ConfigError(
                "loader_kwargs['local_shuffle_buffer_size'] sizes the shuffle that "
                "shuffle=False turns off; drop one of them"
            )
        return self._settings(
            objective=self.objective,
            optimizer_cls=self.optimizer_cls,
            optimizer_kwargs=self.optimizer_kwargs,
            batch_size=batch_size,
            epochs=self.epochs,
            max_iterations=self.max_iterations,
            validation_interval=self.validation_interval,
            no_improve_then_stop=self.no_improve_then_stop,
            listen="valid/loss" if self.listen is _AUTO else self.listen,
            mode=self.mode,
            seed=self.seed,
            shuffle=check_shuffle(self.shuffle),
            precision=check_precision(self.precision, bool(self.scaling.use_gpu)),
            grad_clip_norm=check_grad_clip_norm(self.grad_clip_norm),
            accumulate_grad_batches=check_accumulation(self.accumulate_grad_batches),
            scheduler_interval=check_scheduler(
                self.scheduler_cls, self.scheduler_kwargs, self.scheduler_interval
            ),
            scheduler_cls=self.scheduler_cls,
            scheduler_kwargs=dict(self.scheduler_kwargs or {}),
            signature=check_signature(self.signature),
            collate_fn=check_function(self.collate_fn, "collate_fn"),
            metric_values=metrics,
            **loader,
        )

    @property
    def _listen_mode(self) -> tuple[str | None, str]:
        """The metric the run listens to (None: none) and whether lower or higher is
        better: ``listen``'s default is ``"valid/loss"`` for the managed loop, nothing for
        your own."""
        settings = self.settings
        if settings is not None:
            return settings.listen, settings.mode
        return (None if self.listen is _AUTO else self.listen), self.mode or "min"

    @property
    def _features(self) -> list[str] | None:
        return list(self.features) if self.features is not None else None

    @property
    def _code_refs(self) -> dict[str, str]:
        """``preprocess``/``postprocess`` by import path: a version stores them so, and
        ``load()`` imports them (``ConfigError`` for a function that has none)."""
        return {
            what: import_path(value, what)
            for what, value in (("preprocess", self.preprocess), ("postprocess", self.postprocess))
            if value is not None
        }

    @property
    def _preprocess_fn(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """``preprocess`` as the function Ray Data maps (imported from its path)."""
        refs = self._code_refs
        if "preprocess" not in refs:
            return None
        return resolve(refs["preprocess"], "preprocess", error=ConfigError)

    def _refuse_managed_options(self) -> None:
        """ConfigError for a managed-loop option given with your own loop."""
        given = {
            "transform": self.transform,
            "collate_fn": self.collate_fn,
            "signature": None if self.signature == "singleton" else self.signature,
            "metric_values": self.metric_values,
            "loader_kwargs": self.loader_kwargs,
            "prefetch_size": self.prefetch_size,
            "prefetch_factor": self.prefetch_factor,
            "preprocess": self.preprocess,
            "postprocess": self.postprocess,
            "precision": self.precision,
            "grad_clip_norm": self.grad_clip_norm,
            "accumulate_grad_batches": None
            if self.accumulate_grad_batches == 1
            else self.accumulate_grad_batches,
            "scheduler_cls": self.scheduler_cls,
            "scheduler_kwargs": self.scheduler_kwargs,
            "scheduler_interval": self.scheduler_interval,
        }
        used = [n for n in (*_MANAGED_ONLY, *_STEP_OPTIONS) if given[n] is not None]
        if used:
            raise ConfigError(
                f"{used} configure the managed loop (model=...); a train_loop_per_worker "
                "reads and feeds its own batches: apply them in your loop, or pass model="
            )

    def _default_name(self) -> str:
        return default_name(getattr(self.train_loop_per_worker, "__name__", None), "torch")

    # -- public --------------------------------------------------------------------------
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
        """Train on ``train`` (a query or ``ray.data.Dataset``), validating on ``valid``.

        ``register`` stores the run as a new version in ``train``'s datastore.
        ``resume_from="<name>"`` continues from that registered model's checkpoint
        ``handle`` (weights, optimizer state, step and epoch), recorded as its parent.
        ``progress`` shows a live line (epoch, step, rows/s, the listened metric, ETA) on
        stderr; None (default): only when stderr is a terminal.
        """
        tracking = Tracking.of(self.tracking, self.callbacks)
        loop_settings = self.settings
        listen, mode = self._listen_mode
        stream, display = fit_reports(
            progress,
            self.name,
            listen=listen,
            steps=loop_settings.max_iterations if loop_settings is not None else None,
            epochs=loop_settings.epochs if loop_settings is not None else None,
        )
        plan = plan_for(self.scaling)
        store = store_of(train)
        storage = decide(store, self.run_config, what=f"fit of {self.name!r}")
        resume, parent = self._resume_checkpoint(store, resume_from, version, handle)
        config: dict[str, Any]
        if loop_settings is not None:
            datasets, has_valid, fixed = self._managed_datasets(train, valid, plan, loop_settings)
            if loop_settings.metric_values and not has_valid:
                raise ConfigError(
                    f"metric_values {sorted(loop_settings.metric_values)} are computed on the "
                    "validation set, and this run has none: pass valid=<query> or listen to "
                    "a valid/ metric (validation on a holdout of the key)"
                )
            settings = dataclasses.replace(loop_settings, has_valid=has_valid, replay_valid=fixed)
            config = {"settings": settings, "model": copy.deepcopy(self.model)}
            loop = managed_loop
        else:
            datasets = datasets_for({"train": train, "valid": valid}, plan)
            config = dict(self.train_loop_config or {})
            loop = self.train_loop_per_worker
        if resume is not None:
            config[RESUME_KEY] = resume
        retention = Retention(listen, mode, self.keep_checkpoints)
        trainer = ray.train.torch.TorchTrainer(
            **ray_train_loop(loop, config),
            scaling_config=plan.scaling_config,
            run_config=stream.attach(
                with_run_storage(fit_run_config(self.run_config, self.name, retention), storage)
            ),
            datasets=datasets,
            # The managed loop's batch order is its seed's: Ray Data keeps it.
            dataset_config=ingest_config(plan.scaling_config, ordered=self.managed),
        )
        try:
            with tracking.fit(self.name, self._config_record(plan.scaling_config), stream):
                result = run_reported(trainer, stream, display)
        except Exception as exc:  # Ray Train's failure types differ between V1 and V2
            try:
                raise_worker_error(exc)
            except NonFiniteValues:
                self._raise_non_finite(train, valid, loop_settings)
                raise
            raise
        reported = reported_checkpoints(result)
        if self.run_config is None:  # pruned as it went: only what the handles still named
            reported = retention.surviving(reported)
        record = RunRecord(
            self.name,
            "torch",
            reported,
            meta=self._meta(),
            listen=listen,
            mode=mode,
            keep_epochs=self.keep_checkpoints,
            config=self._config_record(plan.scaling_config),
            lineage={**run_lineage(train, valid, self._split_lineage()), **tracking.lineage()},
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
        )

    def reported_metrics(self, train: Any, valid: Any = None) -> set[str] | None:
        """The metric names a fit on ``train``/``valid`` reports (None for your own loop,
        whose reports only the run can tell): what a sweep may optimize."""
        settings = self.settings
        if settings is None:
            return None
        names = {"train/loss", "train/rows", "step", "epoch"}
        if valid is not None or (settings.listen or "").startswith("valid/"):
            names.add("valid/loss")
            if resolve_objective(settings.objective).classification:
                names.add("valid/accuracy")
            names.update(f"valid/{n}" for n in settings.metric_values)
        return names

    # -- managed mode --------------------------------------------------------------------
    def _settings(self, **kw: Any) -> LoopSettings:
        if self.features is None or self.label is None:
            raise ConfigError("the managed loop needs features=[...] and label=<column>")
        objective = resolve_objective(kw["objective"])
        _check_optimizer_kwargs(optimizer_class(kw["optimizer_cls"]), kw["optimizer_kwargs"])
        for field in ("batch_size", "epochs", "max_iterations", "validation_interval"):
            value = kw[field]
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{field} must be a positive integer or None, got {value!r}")
        if kw["epochs"] is None and kw["max_iterations"] is None:
            kw["epochs"] = 1
        listen = kw["listen"]
        custom = [f"valid/{n}" for n in kw["metric_values"]]
        if listen and listen not in (*_MANAGED_KNOWN, *custom):
            raise MetricNotReported(
                f"listen={listen!r} is not a metric the managed loop reports; use one of "
                f"{[*_MANAGED_KNOWN, *custom]}"
            )
        if listen in custom and kw["mode"] is None:
            raise ConfigError(
                f"listen={listen!r} is one of your metric_values: say whether higher is "
                "better with mode='max' or mode='min'"
            )
        if listen == "valid/accuracy" and not objective.classification:
            raise MetricNotReported(
                f"listen='valid/accuracy' is only reported for classification objectives "
                f"(bce, cross_entropy), not {objective.name!r}; listen to 'valid/loss'"
            )
        if listen is None and kw["no_improve_then_stop"] is not None:
            raise ConfigError(
                "no_improve_then_stop needs a metric to listen to; set listen='valid/loss' "
                "(the default) or drop no_improve_then_stop"
            )
        mode = kw.pop("mode") or ("max" if listen and listen.endswith("accuracy") else "min")
        EarlyStopping(mode, kw["no_improve_then_stop"])  # validates both
        return LoopSettings(
            features=self._features,
            label=self.label,
            mode=mode,
            optimizer_kwargs=dict(kw.pop("optimizer_kwargs") or {}),
            **kw,
        )

    def _managed_datasets(
        self, train: Any, valid: Any, plan: ResourcePlan, settings: LoopSettings
    ) -> tuple[dict[str, ray.data.Dataset], bool, bool]:
        """The run's datasets, whether it has validation rows, and whether those rows are
        the same at every validation (read once, and no transform that may draw at
        random), so that the workers may replay their first pass."""
        features = self._features
        assert features is not None
        sizes: dict[str, int | None] = {}
        for role, query in (("train", train), ("valid", valid)):
            if query is None:
                continue
            # A query's schema and count are planned without reading; a Dataset's schema is
            # Ray's own; anything else is checked in the workers.
            facts = check_query(
                query,
                role,
                features,
                self.label,
                # collate_fn turns any column into inputs; a transform makes the columns.
                any_type=features if settings.collate_fn is not None else (),
                columns_made=self.transform is not None or self.preprocess is not None,
                vectors=True,
            )
            if facts.rows is not None:
                sizes[role] = (
                    estimated_bytes(facts.schema, facts.rows) if facts.schema is not None else None
                )
        wants_valid = bool(settings.listen and settings.listen.startswith("valid/"))
        holdout = valid is None and wants_valid
        if settings.epochs == 1 and not holdout and self.cache is None:
            sizes.pop("train", None)  # read once anyway: stream it
        roles = [r for r, q in (("train", train), ("valid", valid)) if q is not None]
        # Cache first, then split: the holdout and the training rows come from one read.
        keep = roles_to_cache(sizes, self.cache, roles)
        datasets = datasets_for({"train": train, "valid": valid}, plan, cache=keep)
        if holdout:
            key = getattr(train, "key", None)
            datasets["train"], datasets["valid"] = split_by_key(
                datasets["train"],
                key,
                self.valid_fraction,
                settings.seed,
                num_cpus=plan.read_cpus,
            )
        # After the split (which hashes the key the functions may drop), in Ray Data's
        # tasks: the workers receive rows ready for the model.
        for fn in (self._preprocess_fn, self.transform):
            if fn is not None:
                datasets = {
                    role: dataset.map_batches(fn, batch_format="numpy", num_cpus=plan.read_cpus)
                    for role, dataset in datasets.items()
                }
        has_valid = "valid" in datasets
        fixed = (
            has_valid
            and self.transform is None
            and (
                "valid" in keep
                or holdout  # materialized by split_by_key
                or isinstance(valid, MaterializedDataset)
            )
        )
        return datasets, has_valid, fixed

    def _raise_non_finite(self, train: Any, valid: Any, settings: LoopSettings | None) -> None:
        """Count NaN/inf/NULL rows exactly (only on this error path) and raise with them."""
        features = self._features
        assert features is not None and settings is not None
        if self.transform is not None or self.preprocess is not None:
            return  # the columns are made in Ray Data: the worker's message names them
        columns = [*features, *([self.label] if self.label else [])]
        if settings.collate_fn is not None:
            columns = [self.label] if self.label else []
        else:  # vector columns (embeddings) are counted per row by the worker's message
            columns = [c for c in columns if _is_scalar(train, c)]
        for role, query in (("train", train), ("valid", valid)):
            if query is None:
                continue
            dataset = query if isinstance(query, ray.data.Dataset) else query.to_dataset()
            counts = count_non_finite(dataset, columns)
            if counts:
                raise NonFiniteValues(non_finite_message(counts, f"the {role} query")) from None

    def _split_lineage(self) -> dict[str, Any] | None:
        listen, _ = self._listen_mode
        if not self.managed or not (listen or "").startswith("valid/"):
            return None
        return {"holdout": "hash of the key", "fraction": self.valid_fraction}

    # -- both modes ----------------------------------------------------------------------
    def _resume_checkpoint(
        self, store: Any, name: str | None, version: int | None, handle: str
    ) -> tuple[RegisteredCheckpoint | None, dict[str, Any] | None]:
        if name is None:
            return None, None
        if store is None:
            raise ConfigError("resume_from= needs train= to be a datastore query (its registry)")
        record = store.models.get(name, version=version, handle=handle)
        start = RegisteredCheckpoint.of(store, name, record.version, handle)
        directory = start.local_dir
        if self.managed:
            assert self.model is not None
            check_compatible(f"{directory}/{MODEL_FILE}", self.model)
            self._check_work_left(directory)
        parent = {"name": name, "version": record.version, "handle": handle, "step": record.step}
        logger.info("resuming from %s version %s handle %r", name, record.version, handle)
        return start, parent

    def _check_work_left(self, directory: str) -> None:
        s = self.settings
        assert s is not None
        with open(f"{directory}/{STATE_FILE}") as f:
            extra = json.load(f).get("extra", {})
        step, epoch = resume_position(extra)
        if (s.epochs is not None and epoch >= s.epochs) or (
            s.max_iterations is not None and step >= s.max_iterations
        ):
            raise ConfigError(
                f"the checkpoint is already at epoch {epoch}, step {step}, which reaches "
                f"epochs={s.epochs}, max_iterations={s.max_iterations}; these count from the "
                "start of the first run, so raise them to train further"
            )

    def _meta(self) -> dict[str, Any]:
        settings = self.settings
        objective = None
        if settings is not None:
            objective = resolve_objective(settings.objective).name
        if self.model is None:  # Ray style without a template: load() will need model=
            return {"framework": "torch", "features": self._features, "label": self.label}
        meta = model_meta(
            self.model, features=self._features, label=self.label, objective=objective
        )
        if settings is not None:
            # How the loaded model is called, and the functions it runs around the call.
            meta["signature"] = settings.signature
            meta.update(self._code_refs)
        return meta

    def _config_record(self, scaling: ScalingConfig) -> dict[str, Any]:
        record: dict[str, Any] = {
            "mode": "managed" if self.managed else "loop",
            "scaling": {
                "num_workers": scaling.num_workers,
                "resources_per_worker": scaling.resources_per_worker,
                "use_gpu": scaling.use_gpu,
            },
        }
        settings = self.settings
        if settings is not None:
            record["settings"] = dataclasses.asdict(settings)
        else:
            record["loop"] = getattr(self.train_loop_per_worker, "__qualname__", None)
            record["train_loop_config"] = dict(self.train_loop_config or {})
        return json_safe(record)


def _is_scalar(query: Any, column: str) -> bool:
    """Whether ``column`` of ``query`` holds one number per row (True when unknown)."""
    schema = query.schema() if callable(getattr(query, "schema", None)) else None
    schema = getattr(schema, "base_schema", schema)
    names = getattr(schema, "names", None)
    if not names or column not in names:
        return True
    kind = schema.field(column).type
    return not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


def _check_optimizer_kwargs(
    cls: type[torch.optim.Optimizer], kwargs: dict[str, Any] | None
) -> None:
    """ConfigError for an argument the optimizer does not take (before any worker starts)."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    known = [n for n in parameters if n != "params"]
    unknown = sorted(set(kwargs or {}) - set(known))
    if unknown:
        raise ConfigError(
            f"optimizer_kwargs {unknown} are not arguments of {cls.__name__}; it takes {known}"
        )
