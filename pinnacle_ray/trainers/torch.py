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
from ray.train import RunConfig, ScalingConfig

from .._names import default_name, validate_name
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
    keeps_arguments,
    plan_for,
    raise_worker_error,
    reported_checkpoints,
    run_lineage,
    run_reported,
    store_of,
    warn_unregistered,
    worker_entry,
)
from .caching import estimated_bytes, roles_to_cache
from .checkpoint import MODEL_FILE, STATE_FILE
from .early_stopping import EarlyStopping
from .features import check_feature_list, count_non_finite, non_finite_message
from .holdout import split_by_key
from .objectives import resolve_objective
from .params import TrainerParams
from .registration import RunRecord, check_listened, json_safe
from .resources import ResourcePlan
from .retention import Retention
from .run_folder import release_run_folder
from .shuffling import check_shuffle, ordered_ingest
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
_AUTO: Any = type("_Auto", (), {"__repr__": lambda self: "'auto'"})()


@keeps_arguments
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
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = dict(train_loop_config or {})
        self.model = model
        self.managed = train_loop_per_worker is None
        self.scaling_config = scaling_config or ScalingConfig(num_workers=1)
        self.name = (
            default_name(getattr(train_loop_per_worker, "__name__", None), "torch")
            if name is None
            else validate_name(name)
        )
        self.run_config = run_config
        self.tracking = tracking
        self.callbacks = callbacks
        Tracking.of(tracking, callbacks)  # a bad tracker or callback is refused now
        self.keep_checkpoints = keep_checkpoints
        # None: read small queries (<= 1/5 of the object store) once, stream the rest.
        self.cache = cache
        if features is not None:
            check_feature_list(features)
        self.features = list(features) if features is not None else None
        self.label = label
        self.transform = check_function(transform, "transform")
        # By import path, checked here: a version stores them so, and load() imports them.
        self.code_refs = {
            what: import_path(value, what)
            for what, value in (("preprocess", preprocess), ("postprocess", postprocess))
            if value is not None
        }
        self.preprocess = (
            resolve(self.code_refs["preprocess"], "preprocess", error=ConfigError)
            if "preprocess" in self.code_refs
            else None
        )
        if not self.managed:
            given = {
                "transform": transform,
                "collate_fn": collate_fn,
                "signature": None if signature == "singleton" else signature,
                "metric_values": metric_values,
                "loader_kwargs": loader_kwargs,
                "prefetch_size": prefetch_size,
                "prefetch_factor": prefetch_factor,
                "preprocess": preprocess,
                "postprocess": postprocess,
                "precision": precision,
                "grad_clip_norm": grad_clip_norm,
                "accumulate_grad_batches": None
                if accumulate_grad_batches == 1
                else accumulate_grad_batches,
                "scheduler_cls": scheduler_cls,
                "scheduler_kwargs": scheduler_kwargs,
                "scheduler_interval": scheduler_interval,
            }
            used = [n for n in (*_MANAGED_ONLY, *_STEP_OPTIONS) if given[n] is not None]
            if used:
                raise ConfigError(
                    f"{used} configure the managed loop (model=...); a train_loop_per_worker "
                    "reads and feeds its own batches: apply them in your loop, or pass model="
                )
        if self.managed:
            metrics = check_metric_values(metric_values)
            loader = loader_settings(loader_kwargs, batch_size, prefetch_size, prefetch_factor)
            batch_size = loader.pop("batch_size")
            if shuffle is False and loader["local_shuffle_buffer_size"] is not None:
                raise ConfigError(
                    "loader_kwargs['local_shuffle_buffer_size'] sizes the shuffle that "
                    "shuffle=False turns off; drop one of them"
                )
            self.settings = self._settings(
                objective=objective,
                optimizer_cls=optimizer_cls,
                optimizer_kwargs=optimizer_kwargs,
                batch_size=batch_size,
                epochs=epochs,
                max_iterations=max_iterations,
                validation_interval=validation_interval,
                no_improve_then_stop=no_improve_then_stop,
                listen="valid/loss" if listen is _AUTO else listen,
                mode=mode,
                seed=seed,
                shuffle=check_shuffle(shuffle),
                precision=check_precision(precision, bool(self.scaling_config.use_gpu)),
                grad_clip_norm=check_grad_clip_norm(grad_clip_norm),
                accumulate_grad_batches=check_accumulation(accumulate_grad_batches),
                scheduler_interval=check_scheduler(
                    scheduler_cls, scheduler_kwargs, scheduler_interval
                ),
                scheduler_cls=scheduler_cls,
                scheduler_kwargs=dict(scheduler_kwargs or {}),
                signature=check_signature(signature),
                collate_fn=check_function(collate_fn, "collate_fn"),
                metric_values=metrics,
                **loader,
            )
            self.valid_fraction = valid_fraction
            self.listen, self.mode = self.settings.listen, self.settings.mode
        else:
            self.settings = None
            self.listen = None if listen is _AUTO else listen
            self.mode = mode or "min"
            EarlyStopping(self.mode)  # validates mode

    # -- public --------------------------------------------------------------------------
    @property
    def scaling(self) -> ScalingConfig:
        """The ``ScalingConfig`` a fit starts its Ray Train workers with."""
        return self.scaling_config

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
        stream, display = fit_reports(
            progress,
            self.name,
            listen=self.listen,
            steps=self.settings.max_iterations if self.settings is not None else None,
            epochs=self.settings.epochs if self.settings is not None else None,
        )
        plan = plan_for(self.scaling_config)
        store = store_of(train)
        storage = decide(store, self.run_config, what=f"fit of {self.name!r}")
        resume, parent = self._resume_checkpoint(store, resume_from, version, handle)
        config: dict[str, Any]
        if self.managed:
            datasets, has_valid = self._managed_datasets(train, valid, plan)
            if self.settings.metric_values and not has_valid:
                raise ConfigError(
                    f"metric_values {sorted(self.settings.metric_values)} are computed on the "
                    "validation set, and this run has none: pass valid=<query> or listen to "
                    "a valid/ metric (validation on a holdout of the key)"
                )
            settings = dataclasses.replace(self.settings, has_valid=has_valid)
            config = {"settings": settings, "model": copy.deepcopy(self.model)}
            loop = managed_loop
        else:
            datasets = datasets_for({"train": train, "valid": valid}, plan)
            config = dict(self.train_loop_config)
            loop = self.train_loop_per_worker
        if resume is not None:
            config[RESUME_KEY] = resume
        retention = Retention(self.listen, self.mode, self.keep_checkpoints)
        trainer = ray.train.torch.TorchTrainer(
            worker_entry(loop),
            train_loop_config=config,
            scaling_config=plan.scaling_config,
            run_config=stream.attach(
                with_run_storage(fit_run_config(self.run_config, self.name, retention), storage)
            ),
            datasets=datasets,
            # The managed loop's batch order is its seed's: Ray Data keeps it.
            dataset_config=ordered_ingest() if self.managed else None,
        )
        try:
            with tracking.fit(self.name, self._config_record(plan.scaling_config), stream):
                result = run_reported(trainer, stream, display)
        except Exception as exc:  # Ray Train's failure types differ between V1 and V2
            try:
                raise_worker_error(exc)
            except NonFiniteValues:
                self._raise_non_finite(train, valid)
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
            listen=self.listen,
            mode=self.mode,
            keep_epochs=self.keep_checkpoints,
            config=self._config_record(plan.scaling_config),
            lineage={**run_lineage(train, valid, self._split_lineage()), **tracking.lineage()},
            parent=parent,
            history=stream.reports,
        )
        version_record = None
        checkpoint = result.checkpoint
        if register and store is not None and reported:
            version_record = record.register(store)
            if self.run_config is None:  # our run's folder: the registry has its checkpoints
                checkpoint = release_run_folder(store, record.name, version_record.version, result)
        elif reported:
            check_listened(reported, self.listen)
        elif register and store is None:
            warn_unregistered(self.name)
        tracking.link(self.name, version_record.version if version_record is not None else None)
        return TrainResult(
            name=self.name,
            metrics=dict(result.metrics or {}),
            checkpoint=checkpoint,
            version=version_record.version if version_record is not None else None,
            path=getattr(result, "path", None),
            ray_result=result,
            record=record,
            reports=stream.reports,
        )

    def reported_metrics(self, train: Any, valid: Any = None) -> set[str] | None:
        """The metric names a fit on ``train``/``valid`` reports (None for your own loop,
        whose reports only the run can tell): what a sweep may optimize."""
        if not self.managed:
            return None
        assert self.settings is not None
        names = {"train/loss", "train/rows", "step", "epoch"}
        if valid is not None or (self.listen or "").startswith("valid/"):
            names.add("valid/loss")
            if resolve_objective(self.settings.objective).classification:
                names.add("valid/accuracy")
            names.update(f"valid/{n}" for n in self.settings.metric_values)
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
            features=self.features,
            label=self.label,
            mode=mode,
            optimizer_kwargs=dict(kw.pop("optimizer_kwargs") or {}),
            **kw,
        )

    def _managed_datasets(
        self, train: Any, valid: Any, plan: ResourcePlan
    ) -> tuple[dict[str, ray.data.Dataset], bool]:
        assert self.settings is not None and self.features is not None
        sizes: dict[str, int | None] = {}
        for role, query in (("train", train), ("valid", valid)):
            if query is None:
                continue
            # A query's schema and count are planned without reading; a Dataset's schema is
            # Ray's own; anything else is checked in the workers.
            facts = check_query(
                query,
                role,
                self.features,
                self.label,
                # collate_fn turns any column into inputs; a transform makes the columns.
                any_type=self.features if self.settings.collate_fn is not None else (),
                columns_made=self.transform is not None or self.preprocess is not None,
                vectors=True,
            )
            if facts.rows is not None:
                sizes[role] = (
                    estimated_bytes(facts.schema, facts.rows) if facts.schema is not None else None
                )
        wants_valid = bool(self.settings.listen and self.settings.listen.startswith("valid/"))
        holdout = valid is None and wants_valid
        if self.settings.epochs == 1 and not holdout and self.cache is None:
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
                self.settings.seed,
                num_cpus=plan.read_cpus,
            )
        # After the split (which hashes the key the functions may drop), in Ray Data's
        # tasks: the workers receive rows ready for the model.
        for fn in (self.preprocess, self.transform):
            if fn is not None:
                datasets = {
                    role: dataset.map_batches(fn, batch_format="numpy", num_cpus=plan.read_cpus)
                    for role, dataset in datasets.items()
                }
        return datasets, "valid" in datasets

    def _raise_non_finite(self, train: Any, valid: Any) -> None:
        """Count NaN/inf/NULL rows exactly (only on this error path) and raise with them."""
        assert self.features is not None and self.settings is not None
        if self.transform is not None or self.preprocess is not None:
            return  # the columns are made in Ray Data: the worker's message names them
        columns = [*self.features, *([self.label] if self.label else [])]
        if self.settings.collate_fn is not None:
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
        if not self.managed or not (self.listen or "").startswith("valid/"):
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
        assert self.settings is not None
        with open(f"{directory}/{STATE_FILE}") as f:
            extra = json.load(f).get("extra", {})
        step, epoch = resume_position(extra)
        s = self.settings
        if (s.epochs is not None and epoch >= s.epochs) or (
            s.max_iterations is not None and step >= s.max_iterations
        ):
            raise ConfigError(
                f"the checkpoint is already at epoch {epoch}, step {step}, which reaches "
                f"epochs={s.epochs}, max_iterations={s.max_iterations}; these count from the "
                "start of the first run, so raise them to train further"
            )

    def _meta(self) -> dict[str, Any]:
        objective = None
        if self.settings is not None:
            objective = resolve_objective(self.settings.objective).name
        if self.model is None:  # Ray style without a template: load() will need model=
            return {"framework": "torch", "features": self.features, "label": self.label}
        meta = model_meta(self.model, features=self.features, label=self.label, objective=objective)
        if self.settings is not None:
            # How the loaded model is called, and the functions it runs around the call.
            meta["signature"] = self.settings.signature
            meta.update(self.code_refs)
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
        if self.managed:
            record["settings"] = dataclasses.asdict(self.settings)
        else:
            record["loop"] = getattr(self.train_loop_per_worker, "__qualname__", None)
            record["train_loop_config"] = self.train_loop_config
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
