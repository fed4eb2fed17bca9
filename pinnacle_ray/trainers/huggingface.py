"""``HuggingFaceTrainer``: fine-tune a transformers model on text rows of a datastore query,
on Ray Train workers, and register it with its tokenizer.

The query's rows are tokenized by Ray Data (``map_batches``, next to the read) and each
worker streams its shard into ``transformers.Trainer`` through Ray's documented
integration (``prepare_trainer`` + a report callback); see :mod:`.huggingface_loop`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray.data
import ray.train
import ray.train.torch
from ray.train import RunConfig, ScalingConfig

from .._internal.names import default_name, validate_name
from ..errors import (
    ConfigError,
    DataError,
    EmptyText,
    LabelMismatch,
    NonFiniteValues,
    NonNumericFeature,
    TooFewRows,
)
from ..registry.huggingface_flavor import CAUSAL_LM, CLASSIFICATION, REGRESSION, TASKS, TOKEN
from ..registry.huggingface_lm import base_fingerprint
from ..registry.torch_flavor import read_meta
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
    warn_unregistered,
)
from .caching import estimated_bytes
from .devices import check_hf_precision
from .huggingface_causal import TokenizeCausal, lora_settings
from .huggingface_loop import (
    PRETRAINED_KEY,
    TRAINER_STATE,
    HFSpec,
    huggingface_loop,
    steps_for,
)
from .huggingface_rows import Tokenize
from .huggingface_tokens import TokenizeWords, scan_tags
from .ingest import ingest_config
from .params import TrainerParams
from .pretrained import resolve_pretrained, resolve_tokenizer
from .registration import RunRecord, check_listened, json_safe
from .retention import Retention
from .run_folder import release_run_folder
from .shuffling import check_shuffle
from .storage import (
    RegisteredCheckpoint,
    ShippedFolder,
    decide,
    node_spread,
    with_run_storage,
)
from .submission import Submittable, records_job
from .tabular import MAX_DISTINCT, check_query, distinct_values, is_numeric, require_classes
from .tracking import Tracking

__all__ = ["HuggingFaceTrainer"]

logger = logging.getLogger("pinnacle_ray.trainers")

# Arguments the trainer sets itself (from the data and the run), with what to use instead.
_MANAGED = {
    "output_dir": "Ray Train's storage holds the checkpoints (run_config=RunConfig(...))",
    "eval_strategy": "eval_steps= sets how often; each evaluation also checkpoints",
    "save_strategy": "checkpoints follow eval_steps and every epoch's end",
    "save_steps": "checkpoints follow eval_steps and every epoch's end",
    "load_best_model_at_end": "the registry keeps the best checkpoint as handle 'best'",
    "metric_for_best_model": "use listen='valid/<metric>'",
}
_RENAMED = {"evaluation_strategy": "eval_strategy", "tokenizer": "processing_class"}
_TOKENIZE_BATCH = 256
# Label scans of queries at most this large read in the driver (all their columns, texts
# too: a few MB at most); see _classes.
_DRIVER_SCAN_ROWS = 20_000
_DRIVER_SCAN_BYTES = 8_000_000


@dataclasses.dataclass(frozen=True)
class HFSetup:
    """What a ``HuggingFaceTrainer`` fit uses, resolved from its parameters: the local
    folder the workers load the pretrained model from (``model`` as given, or its Hugging
    Face cache snapshot), its tokenizer, ``max_length`` in tokens (given, else
    ``min(128, max_positions)``), the model's position limit, the LoRA settings as a dict
    (None: the whole model trains) and ``training_args`` as a dict."""

    model_path: str
    tokenizer: Any
    max_length: int
    max_positions: int | None
    peft: dict[str, Any] | None
    training_args: dict[str, Any]


class HuggingFaceTrainer(TrainerParams, Submittable):
    """Fine-tune a Hugging Face transformers model on text rows, distributed on Ray Train.

    Example::

        trainer = pr.HuggingFaceTrainer(
            model="/models/MiniLM-L6",            # a save_pretrained folder (or a cached name)
            text_column="review",                 # or ("question", "answer") for text pairs
            label="sentiment",                    # strings are fine: mapped to ids and back
            training_args={"num_train_epochs": 2, "learning_rate": 5e-5,
                           "per_device_train_batch_size": 16},
            max_length=128,
            scaling_config=ScalingConfig(num_workers=2),
            name="sentiment",
        )
        result = trainer.fit(train=store.table("reviews", where={"split": "train"}),
                             valid=store.table("reviews", where={"split": "valid"}))
        store.models.load("sentiment").predict(["great value", "broke in a day"])

    ``task`` is ``"sequence-classification"``, ``"regression"``,
    ``"token-classification"`` (one tag per word: whitespace-separated words and tags, or
    list columns; see :mod:`.huggingface_tokens`) or ``"causal-lm"`` (next-token
    fine-tuning on the text column, no label; see :mod:`.huggingface_causal`). By default
    it is token classification for a list label, regression for a float label, else
    sequence classification. ``peft={"r": 8, ...}`` (or a ``peft.LoraConfig``) trains a
    LoRA adapter instead of the whole causal LM and registers the adapter only, with a
    reference to its base model (see :mod:`pinnacle_ray.registry.huggingface_lm`).
    ``model`` is a ``save_pretrained`` folder or a hub name; a name not on this machine is
    downloaded once, here on the driver (safetensors, config and tokenizer files only),
    unless ``offline=True`` or ``HF_HUB_OFFLINE=1`` (see :mod:`.pretrained`).
    ``training_args`` are ``transformers.TrainingArguments`` fields (a dict, or a
    ``TrainingArguments`` whose fields set away from their defaults are taken); epochs
    become steps from the planned row count, because a streamed shard has no length. Each
    evaluation (every ``eval_steps``, default once per epoch) and each epoch's
    end reports the metrics with a checkpoint (safetensors + JSON); the run is registered
    with handles ``latest``, ``best`` (by ``listen``) and ``epoch_<n>`` (the last
    ``keep_checkpoints`` epochs); checkpoints no handle names any more are deleted as the
    run goes.
    ``early_stopping_patience`` adds transformers' ``EarlyStoppingCallback``.
    ``tracking="mlflow"`` or ``callbacks=[pr.MLflowCallback(...)]`` log the run to MLflow
    (params, every report at its step, the registered version as tags); see
    docs/tracking.md.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        text_column: str | tuple[str, str] | list[str] = "text",
        label: str = "label",
        task: str | None = None,
        tokenizer: Any = None,
        training_args: dict[str, Any] | Any | None = None,
        max_length: int | None = None,
        early_stopping_patience: int | None = None,
        early_stopping_threshold: float = 0.0,
        listen: str | None = None,
        mode: str | None = None,
        keep_checkpoints: int = 3,
        seed: int = 0,
        shuffle: bool = True,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        name: str | None = None,
        tracking: str | None = None,
        callbacks: list[Any] | None = None,
        peft: dict[str, Any] | Any | None = None,
        offline: bool | None = None,
        max_new_tokens: int = 20,
    ) -> None:
        columns = _text_columns(text_column)
        if not isinstance(label, str) or not label:
            raise ConfigError(f"label must be a column name, got {label!r}")
        if task is not None and task not in TASKS:
            raise ConfigError(
                f"task={task!r} is not supported; use one of {list(TASKS)} (or None to infer "
                "it from the label's type)"
            )
        if task in (TOKEN, CAUSAL_LM) and len(columns) != 1:
            raise ConfigError(
                f"task={task!r} reads one text column, got text_column={text_column!r}"
            )
        if not isinstance(keep_checkpoints, int) or keep_checkpoints < 0:
            raise ConfigError(f"keep_checkpoints must be an integer >= 0, got {keep_checkpoints!r}")
        if early_stopping_patience is not None and (
            not isinstance(early_stopping_patience, int) or early_stopping_patience < 1
        ):
            raise ConfigError(
                f"early_stopping_patience must be a positive integer or None, got "
                f"{early_stopping_patience!r}"
            )
        if mode not in (None, "min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        check_shuffle(shuffle)
        float(early_stopping_threshold)  # a number
        Tracking.of(tracking, callbacks)  # a bad tracker or callback is refused now
        if name is not None:
            validate_name(name)
        self.model = model
        self.text_column = text_column
        self.label = label
        self.task = task
        self.tokenizer = tokenizer
        self.training_args = training_args
        self.max_length = max_length
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold
        self.listen = listen
        self.mode = mode
        self.keep_checkpoints = keep_checkpoints
        self.seed = seed
        self.shuffle = shuffle
        self.scaling_config = scaling_config
        self.run_config = run_config
        self.name = name
        self.tracking = tracking
        self.callbacks = callbacks
        self.peft = peft
        self.offline = offline
        self.max_new_tokens = max_new_tokens
        # The pretrained model is found (downloaded once when given by hub name) and its
        # tokenizer loaded now: a model that is not there is refused before any fit.
        self.setup  # noqa: B018

    @property
    def setup(self) -> HFSetup:
        """What a fit uses, resolved from the parameters when first needed and kept until
        one changes: the local model folder, the loaded tokenizer, ``max_length``, the LoRA
        settings and the training arguments as a dict."""
        return self._derive("setup", self._resolve)

    def _resolve(self) -> HFSetup:
        peft = lora_settings(self.peft, self.task or CLASSIFICATION)
        training_args = _check_training_args(self.training_args)
        path, config = resolve_pretrained(self.model, offline=self.offline)
        tokenizer = resolve_tokenizer(self.tokenizer, path)
        return HFSetup(
            model_path=path,
            tokenizer=tokenizer,
            max_length=_max_length(self.max_length, config, tokenizer),
            max_positions=getattr(config, "max_position_embeddings", None),
            peft=peft,
            training_args=training_args,
        )

    @property
    def text_columns(self) -> list[str]:
        """The text column(s) read: ``[text]`` or ``[text, text_pair]``."""
        return _text_columns(self.text_column)

    @property
    def scaling(self) -> ScalingConfig:
        """The ``ScalingConfig`` a fit starts its Ray Train workers with (the one given,
        else one worker)."""
        return self.scaling_config or ScalingConfig(num_workers=1)

    def _default_name(self) -> str:
        return default_name(Path(str(self.model)).name, "huggingface")

    # -- public ----------------------------------------------------------------------------
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
        """Fine-tune on ``train`` (a query or ``ray.data.Dataset``), evaluating on ``valid``.

        ``register`` stores the run as a new version in ``train``'s datastore.
        ``resume_from="<name>"`` continues that registered model's checkpoint ``handle``
        (weights, optimizer, scheduler and step; epochs count from its first run).
        """
        tracking = Tracking.of(self.tracking, self.callbacks)
        stream, display = fit_reports(progress, self.name, unit="step")
        # Flags CPU workers cannot honour (tf32) are refused before any read or worker.
        setup = self.setup
        check_hf_precision(setup.training_args, bool(self.scaling.use_gpu))
        facts = check_query(train, "train", self.text_columns, self._label, any_type=self._columns)
        task = self._task(facts.schema)
        self._check_types(facts.schema, "train", task)
        if valid is not None:
            self._check(valid, "valid", task)
        if (
            task == REGRESSION
            and facts.schema is not None
            and not is_numeric(facts.schema, self.label)
        ):
            raise NonNumericFeature(
                f"label column {self.label!r} has type {facts.schema.field(self.label).type}; "
                "regression needs numbers (or task='sequence-classification' for classes)"
            )
        listen, mode = self._listen(task, valid is not None)
        plan = plan_for(self.scaling)
        store = store_of(train)
        storage = decide(store, self.run_config, what=f"fit of {self.name!r}")
        start, parent, resumed, position = self._resume(store, resume_from, version, handle)
        datasets = datasets_for({"train": train, "valid": valid}, plan)
        labels = self._labels(task, datasets, resumed, facts.key, {"train": train, "valid": valid})
        rows = facts.rows if facts.rows is not None else datasets["train"].count()
        # Elastic num_workers=(min, max): every worker that may start needs rows; the steps
        # are counted for the minimum, so a fuller run goes over its shards again rather
        # than stopping short of num_train_epochs.
        workers = plan.scaling_config.max_workers
        if rows < workers:
            raise TooFewRows(
                f"the training query has {rows} row(s) for {workers} workers; every worker "
                "needs rows. Use fewer workers (ScalingConfig(num_workers=...))"
            )
        least = plan.scaling_config.min_workers
        spec = self._spec(task, labels, rows, least, valid is not None, listen, mode, position)
        tokenize: Any = (
            TokenizeWords(
                setup.tokenizer, self.text_columns[0], self.label, labels, setup.max_length
            )
            if task == TOKEN
            else TokenizeCausal(setup.tokenizer, self.text_columns[0], setup.max_length)
            if task == CAUSAL_LM
            else Tokenize(setup.tokenizer, self.text_columns, self.label, labels, setup.max_length)
        )
        datasets = {
            role: ds.map_batches(
                tokenize,
                batch_format="pyarrow",
                batch_size=_TOKENIZE_BATCH,
                num_cpus=plan.read_cpus,
            )
            for role, ds in datasets.items()
        }
        config: dict[str, Any] = {"spec": spec, "tokenizer": setup.tokenizer}
        if node_spread().multi_node:
            # Workers on other nodes see neither this folder nor this machine's HF cache.
            pretrained = self._pretrained_folder()
            if pretrained is not None:
                config[PRETRAINED_KEY] = ShippedFolder.of(pretrained)
        if start is not None and parent is not None:
            config[RESUME_KEY] = RegisteredCheckpoint.of(
                store, parent["name"], parent["version"], parent["handle"], start
            )
        display.expect(
            steps=spec.max_steps, epochs=setup.training_args.get("num_train_epochs", 3.0)
        )
        retention = Retention(listen, mode, self.keep_checkpoints)
        trainer = ray.train.torch.TorchTrainer(
            **ray_train_loop(huggingface_loop, config),
            scaling_config=plan.scaling_config,
            # the seed's batch order, kept by Ray Data
            dataset_config=ingest_config(plan.scaling_config, ordered=True),
            run_config=stream.attach(
                with_run_storage(fit_run_config(self.run_config, self.name, retention), storage)
            ),
            datasets=datasets,
        )
        try:
            with tracking.fit(self.name, self._config_record(spec, plan.scaling_config), stream):
                result = run_reported(trainer, stream, display)
        except Exception as exc:
            try:
                raise_worker_error(exc)
            except (EmptyText, NonFiniteValues):
                self._count_bad_rows(train, valid)
                raise
            raise
        metrics = dict(result.metrics or {})
        self._say_truncated(metrics)
        reported = reported_checkpoints(result)
        if self.run_config is None:  # pruned as it went: only what the handles still named
            reported = retention.surviving(reported)
        record = RunRecord(
            self.name,
            "huggingface",
            reported,
            meta=self._meta(task, labels),
            listen=listen,
            mode=mode,
            keep_epochs=self.keep_checkpoints,
            config=self._config_record(spec, plan.scaling_config),
            lineage={**run_lineage(train, valid, None), **tracking.lineage()},
            parent=parent,
            history=stream.reports,
        )
        version = None
        checkpoint = result.checkpoint
        if register and store is not None and reported:
            version = record.register(store)
            if self.run_config is None:  # our run's folder: the registry has its checkpoints
                checkpoint = release_run_folder(store, record.name, version.version, result)
        elif reported:
            check_listened(reported, listen)
        elif register and store is None:
            warn_unregistered(self.name)
        tracking.link(self.name, version.version if version is not None else None)
        return TrainResult(
            name=self.name,
            metrics=metrics,
            checkpoint=checkpoint,
            version=version.version if version is not None else None,
            path=getattr(result, "path", None),
            ray_result=result,
            record=record,
            reports=stream.reports,
        )

    def reported_metrics(self, train: Any, valid: Any = None) -> set[str]:
        """The metric names a fit on ``train``/``valid`` reports: what a sweep may optimize
        (the task follows the label's type, as in :meth:`fit`)."""
        schema = getattr(train, "schema", None)
        task = self._task(schema() if callable(schema) else None)
        names = {"train/loss", "step", "epoch", "learning_rate", "grad_norm"}
        if valid is not None:
            names |= {"valid/loss", *_valid_metrics(task)}
        return names

    # -- checks before any worker starts ---------------------------------------------------
    @property
    def _label(self) -> str | None:
        """The label column read; a causal LM reads none (its text is its own target)."""
        return None if self.task == CAUSAL_LM else self.label

    @property
    def _columns(self) -> list[str]:
        return [*self.text_columns, *([self._label] if self._label else [])]

    def _task(self, schema: pa.Schema | None) -> str:
        """``task``, else from the label's type: a list of tags -> token classification, a
        float -> regression, anything else -> sequence classification."""
        if self.task is not None:
            return self.task
        kind = schema.field(self.label).type if schema and self.label in schema.names else None
        if kind is not None and _is_words(kind) and not _is_text(kind):
            return TOKEN
        if kind is not None and pa.types.is_floating(kind):
            return REGRESSION
        return CLASSIFICATION

    def _check(self, query: Any, role: str, task: str) -> Any:
        facts = check_query(query, role, self.text_columns, self._label, any_type=self._columns)
        self._check_types(facts.schema, role, task)
        return facts

    def _check_types(self, schema: pa.Schema | None, role: str, task: str) -> None:
        """Texts are text (or, for token classification, lists of words, as are the tags)."""
        if schema is None:
            return
        accepted = _is_words if task == TOKEN else _is_text
        for column in self.text_columns:
            kind = schema.field(column).type
            if not accepted(kind):
                raise DataError(
                    f"text column {column!r} of the {role} query has type {kind}, not text"
                    + (" or a list of words" if task == TOKEN else "")
                    + "; cast it in the query (store.sql(... CAST(col AS TEXT) ...)) or pick "
                    "the text column with text_column="
                )
        if task == CAUSAL_LM:
            return
        kind = schema.field(self.label).type
        if task == TOKEN and not _is_words(kind):
            raise DataError(
                f"label column {self.label!r} of the {role} query has type {kind}; token "
                "classification needs one tag per word: whitespace-separated tags in a text "
                "column, or a list of strings"
            )

    def _listen(self, task: str, has_valid: bool) -> tuple[str, str]:
        known = ["train/loss"]
        if has_valid:
            known += ["valid/loss", *_valid_metrics(task)]
        listen = self.listen or ("valid/loss" if has_valid else "train/loss")
        if listen not in known:
            raise ConfigError(
                f"listen={listen!r} is not reported by this run; use one of {known}"
                + ("" if has_valid else " (pass valid= for validation metrics)")
            )
        if self.early_stopping_patience is not None and not listen.startswith("valid/"):
            raise ConfigError(
                "early_stopping_patience needs validation: pass valid=<query> and listen to a "
                "valid/ metric"
            )
        mode = self.mode or ("max" if listen.endswith("accuracy") else "min")
        return listen, mode

    def _labels(
        self,
        task: str,
        datasets: dict[str, ray.data.Dataset],
        resumed: list[Any] | None,
        key: str | None = None,
        queries: dict[str, Any] | None = None,
    ) -> list[Any] | None:
        """The label values in id order (classification): the training rows' classes (or
        tags), or the resumed model's; validation labels must be among them. A small query
        (``queries``) is scanned here (see :func:`_classes`)."""
        if task in (REGRESSION, CAUSAL_LM):
            return None
        if task == TOKEN:
            column = self.text_columns[0]
            values = {
                role: scan_tags(ds, column, self.label, key, role) for role, ds in datasets.items()
            }
        else:
            values = {}
        queries = queries or {}

        def classes_of(role: str) -> list[Any]:
            return _classes(queries.get(role), datasets[role], self.label)

        classes = values["train"] if values else classes_of("train")
        require_classes(classes, self.label, "the training query")
        known = list(resumed) if resumed is not None else classes
        if resumed is not None and set(classes) - set(known):
            raise LabelMismatch(
                f"the training query has label(s) {sorted(set(classes) - set(known))[:10]} that "
                f"the resumed model does not know (it predicts {known[:10]}); train a new "
                "model, or filter those rows out"
            )
        if "valid" in datasets:
            found = values["valid"] if values else classes_of("valid")
            unseen = sorted(set(found) - set(known))
            if unseen:
                raise LabelMismatch(
                    f"the valid query has label(s) {unseen[:10]} that the training query does "
                    f"not have (train labels: {known[:10]}); the model cannot learn them. Make "
                    "both queries hold the same label set (e.g. split by a hash of the key)"
                )
        return known

    def _spec(
        self,
        task: str,
        labels: list[Any] | None,
        rows: int,
        workers: int,
        has_valid: bool,
        listen: str,
        mode: str,
        position: tuple[int, int] = (0, 0),
    ) -> HFSpec:
        """What the workers run. Resumed from ``position`` (step, epochs done), epochs count
        from the first run and continue at this query's steps per epoch, so a resumed run on
        fewer (new) rows still trains the epochs that are left."""
        setup = self.setup
        args = setup.training_args
        per_epoch, total = steps_for(
            rows,
            workers,
            int(args.get("per_device_train_batch_size", 8)),
            int(args.get("gradient_accumulation_steps", 1)),
            float(args.get("num_train_epochs", 3.0)),
        )
        start_step, start_epoch = position
        epochs = float(args.get("num_train_epochs", 3.0))
        if start_step:
            total = start_step + max(0, math.ceil((epochs - start_epoch) * per_epoch))
        max_steps = int(args.get("max_steps", -1))
        total = max_steps if max_steps > 0 else total
        if start_step and total <= start_step:
            raise ConfigError(
                f"the checkpoint is already at step {start_step} (epoch {start_epoch}), which "
                f"reaches this run's num_train_epochs={epochs:g}, max_steps={max_steps}; epochs "
                "and max_steps count from the start of the first run, so raise them to train "
                "further"
            )
        eval_steps = args.get("eval_steps")
        if isinstance(eval_steps, float) and eval_steps < 1:
            eval_steps = max(1, round(eval_steps * total))
        eval_steps = int(eval_steps) if eval_steps else per_epoch
        pad = setup.tokenizer.pad_token_id
        return HFSpec(
            model=setup.model_path,
            task=task,
            labels=labels,
            training_args={k: v for k, v in args.items() if k not in ("max_steps", "eval_steps")},
            max_steps=total,
            steps_per_epoch=per_epoch,
            eval_steps=eval_steps,
            has_valid=has_valid,
            pad_token_id=int(pad) if pad is not None else 0,
            listen=listen,
            greater_is_better=mode == "max",
            early_stopping_patience=self.early_stopping_patience,
            early_stopping_threshold=float(self.early_stopping_threshold),
            text_columns=self.text_columns,
            seed=self.seed,
            shuffle=self.shuffle,
            use_gpu=bool(self.scaling.use_gpu),
            start_step=start_step,
            start_epoch=start_epoch,
            peft=setup.peft,
        )

    def _pretrained_folder(self) -> str | None:
        """The local folder the workers load the pretrained model from: the one given, or
        the Hugging Face cache's snapshot of a model given by name."""
        path = self.setup.model_path
        if Path(path).is_dir():
            return path
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(path, local_files_only=True)
        except Exception:  # resolved from the cache before; the workers will say what fails
            return None

    # -- resume ----------------------------------------------------------------------------
    def _resume(
        self, store: Any, name: str | None, version: int | None, handle: str
    ) -> tuple[str | None, dict[str, Any] | None, list[Any] | None, tuple[int, int]]:
        """The checkpoint folder to resume from, the parent record, the resumed model's
        labels and its position: (step, epochs done)."""
        if name is None:
            return None, None, None, (0, 0)
        if store is None:
            raise ConfigError("resume_from= needs train= to be a datastore query (its registry)")
        record = store.models.get(name, version=version, handle=handle)
        meta = read_meta(store.models.checkpoint_dir(name, version=record.version))
        if meta.get("framework") != "huggingface":
            raise ConfigError(
                f"{name} version {record.version} is a {meta.get('framework')!r} model, not one "
                "trained by pr.HuggingFaceTrainer"
            )
        if list(meta.get("text_columns") or []) != self.text_columns:
            raise ConfigError(
                f"{name} version {record.version} reads text columns {meta.get('text_columns')}, "
                f"not {self.text_columns}"
            )
        directory = store.models.checkpoint_dir(name, version=record.version, handle=handle)
        parent = {"name": name, "version": record.version, "handle": handle, "step": record.step}
        logger.info("resuming from %s version %s handle %r", name, record.version, handle)
        return directory, parent, meta.get("labels"), _position(directory, record.metrics)

    # -- after a run -----------------------------------------------------------------------
    def _count_bad_rows(self, train: Any, valid: Any) -> None:
        """Count empty texts and missing labels exactly (only on this error path) and raise."""
        for role, query in (("train", train), ("valid", valid)):
            if query is None:
                continue
            dataset = query if isinstance(query, ray.data.Dataset) else query.to_dataset()
            empty, missing = _count_empty(dataset, self.text_columns, self._label)
            if empty:
                parts = ", ".join(f"{c!r}: {n} row(s)" for c, n in empty.items())
                raise EmptyText(
                    f"empty or NULL texts in the {role} query ({parts}); a model cannot learn "
                    "from no text. Filter them out in the query (e.g. where col <> '' and col "
                    "IS NOT NULL)"
                ) from None
            if missing:
                raise NonFiniteValues(
                    f"label column {self.label!r} is NULL or NaN in {missing} row(s) of the "
                    f"{role} query; filter them out in the query (WHERE {self.label} IS NOT "
                    "NULL) before training"
                ) from None

    def _say_truncated(self, metrics: dict[str, Any]) -> None:
        truncated, rows = metrics.get("data/truncated", 0), metrics.get("data/rows_read", 0)
        if truncated:
            logger.warning(
                "%d of %d training rows read (%.1f%%) were longer than max_length=%d tokens and "
                "were truncated; raise max_length (this model takes up to %s) or shorten the "
                "texts",
                truncated,
                rows,
                100 * truncated / max(rows, 1),
                self.setup.max_length,
                self.setup.max_positions,
            )

    def _meta(self, task: str, labels: list[Any] | None) -> dict[str, Any]:
        import transformers

        return json_safe(
            {
                "framework": "huggingface",
                "task": task,
                "text_columns": self.text_columns,
                "label": self._label,
                "labels": labels,
                "max_length": self.setup.max_length,
                "base_model": self.setup.model_path,
                "transformers_version": transformers.__version__,
                **self._causal_meta(task),
            }
        )

    def _causal_meta(self, task: str) -> dict[str, Any]:
        """A causal LM's generation settings; for LoRA, its LoRA settings and the reference
        to its base (as given, the hub revision, the sha256 the base must match at load)."""
        if task != CAUSAL_LM:
            return {}
        out: dict[str, Any] = {"generation": {"max_new_tokens": self.max_new_tokens}}
        setup = self.setup
        if setup.peft is not None:
            given = str(self.model)
            hub = not Path(given).expanduser().is_dir()
            out.update(
                peft=setup.peft,
                base_model_name=given if hub else None,
                base_revision=Path(setup.model_path).name if hub else None,
                base_sha256=base_fingerprint(setup.model_path),
            )
        return out

    def _config_record(self, spec: HFSpec, scaling: ScalingConfig) -> dict[str, Any]:
        record = dataclasses.asdict(spec)
        record.pop("labels", None)
        record["max_length"] = self.setup.max_length
        record["scaling"] = {
            "num_workers": scaling.num_workers,
            "resources_per_worker": scaling.resources_per_worker,
            "use_gpu": scaling.use_gpu,
        }
        return json_safe(record)


def _classes(query: Any, dataset: ray.data.Dataset, label: str) -> list[Any]:
    """The sorted distinct non-NULL values of ``label``, as :func:`distinct_values` finds
    them. A datastore query of at most ``_DRIVER_SCAN_ROWS`` rows (and an estimated
    ``_DRIVER_SCAN_BYTES``) is read here in one round trip, by its ``to_arrow()`` (the
    planned schema every shard has, so the values are those the tokenizing map sees): a
    pass of Ray Data costs seconds of tasks and worker processes before Ray Train starts,
    where reading a few thousand rows takes milliseconds.
    """
    schema = getattr(query, "schema", None)
    if query is None or isinstance(query, ray.data.Dataset) or not callable(schema):
        return distinct_values(dataset, label)
    if not hasattr(query, "to_arrow") or not hasattr(query, "count"):
        return distinct_values(dataset, label)
    rows = query.count()
    if rows > _DRIVER_SCAN_ROWS or estimated_bytes(schema(), rows) > _DRIVER_SCAN_BYTES:
        return distinct_values(dataset, label)
    values = pc.unique(query.to_arrow().column(label).drop_null()).to_pylist()
    return sorted(v for v in values if v == v)[:MAX_DISTINCT]  # v == v drops NaN


def _valid_metrics(task: str) -> list[str]:
    """The validation metrics besides ``valid/loss`` a run of ``task`` reports."""
    return {
        REGRESSION: ["valid/rmse", "valid/mae"],
        CAUSAL_LM: ["valid/perplexity"],
    }.get(task, ["valid/accuracy"])


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_words(kind: pa.DataType) -> bool:
    """Text, or a list of strings (the word and tag columns of token classification)."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _is_text(kind.value_type) or pa.types.is_null(kind.value_type)
    return _is_text(kind)


def _position(directory: str, metrics: dict[str, Any] | None) -> tuple[int, int]:
    """(step, epochs done) of a registered checkpoint: its reported step and epoch (an
    epoch not closed is done again), else HF's trainer state."""
    metrics = metrics or {}
    path = Path(directory) / TRAINER_STATE
    state = json.loads(path.read_text()) if path.is_file() else {}
    step = int(metrics.get("step", state.get("global_step", 0)) or 0)
    epoch = metrics.get("epoch")
    if not isinstance(epoch, int):
        return step, int(state.get("epoch", 0) or 0)
    return step, epoch + (1 if metrics.get("epoch_done") else 0)


def _text_columns(text_column: Any) -> list[str]:
    columns = [text_column] if isinstance(text_column, str) else list(text_column or [])
    if not 1 <= len(columns) <= 2 or not all(isinstance(c, str) and c for c in columns):
        raise ConfigError(
            f"text_column must be a column name or a pair of them (text, text_pair), got "
            f"{text_column!r}"
        )
    return columns


def _max_length(max_length: int | None, config: Any, tokenizer: Any) -> int:
    limit = getattr(config, "max_position_embeddings", None)
    if max_length is None:
        return min(128, limit) if isinstance(limit, int) else 128
    if not isinstance(max_length, int) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2 (tokens), got {max_length!r}")
    if isinstance(limit, int) and max_length > limit:
        raise ConfigError(
            f"max_length={max_length} is more than the model takes ({limit} positions, "
            "config.max_position_embeddings); lower it"
        )
    return max_length


def _check_training_args(training_args: Any) -> dict[str, Any]:
    from transformers import TrainingArguments

    if isinstance(training_args, TrainingArguments):
        args = _changed_fields(training_args)
    elif training_args is None or isinstance(training_args, dict):
        args = dict(training_args or {})
    else:
        raise ConfigError(
            f"training_args must be a dict of TrainingArguments fields or a "
            f"transformers.TrainingArguments, got {type(training_args).__name__}"
        )
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    for key in args:
        if key in _RENAMED:
            raise ConfigError(
                f"training_args[{key!r}] is called {_RENAMED[key]!r} in transformers 5; rename it"
            )
        if key in _MANAGED:
            raise ConfigError(f"training_args[{key!r}] is set by the trainer: {_MANAGED[key]}")
        if key not in known:
            raise ConfigError(
                f"training_args[{key!r}] is not a transformers.TrainingArguments field; see "
                "its documentation for the names (e.g. learning_rate, num_train_epochs, "
                "per_device_train_batch_size, weight_decay, warmup_steps)"
            )
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        value = args.get(key, 8)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"training_args[{key!r}] must be a positive integer, got {value!r}")
    return args


def _changed_fields(args: Any) -> dict[str, Any]:
    """The fields of a ``TrainingArguments`` set away from their defaults (``output_dir``
    aside: Ray Train's storage holds the checkpoints), enums as their values."""
    import enum

    from transformers import TrainingArguments

    default = TrainingArguments(output_dir=args.output_dir)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(TrainingArguments):
        if not f.init or f.name == "output_dir":
            continue
        value = getattr(args, f.name)
        if value != getattr(default, f.name):
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


def _count_empty(
    dataset: ray.data.Dataset, text_columns: list[str], label: str | None
) -> tuple[dict[str, int], int]:
    """Empty/NULL texts per column and NULL/NaN labels, over the whole dataset."""

    def count(table: pa.Table) -> pa.Table:
        row: dict[str, list[int]] = {}
        for c in text_columns:
            row[c] = [sum(t is None or not str(t).strip() for t in table.column(c).to_pylist())]
        values = table.column(label).to_pylist() if label is not None else []
        row["__label"] = [sum(v is None or (isinstance(v, float) and v != v) for v in values)]
        return pa.table(row)

    totals = dataset.select_columns([*text_columns, *([label] if label else [])]).map_batches(
        count, batch_format="pyarrow"
    )
    sums = dict.fromkeys([*text_columns, "__label"], 0)
    for row in totals.iter_rows():
        for c in sums:
            sums[c] += int(row[c])
    missing = sums.pop("__label")
    return {c: n for c, n in sums.items() if n}, missing
