"""What every Ray Train worker runs for :class:`pinnacle_ray.HuggingFaceTrainer`.

Ray's documented integration, unchanged: a ``transformers.Trainer`` whose datasets are the
worker's shards (``iter_torch_batches``, streamed, never materialized on the worker),
``ray.train.huggingface.transformers.prepare_trainer`` and a ``RayTrainReportCallback``
(ours writes the checkpoint in safe formats). Texts arrive tokenized by Ray Data; batches
are padded here to their longest row. Everything needed to continue (weights, optimizer,
scheduler, step, early-stopping state) is in each checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import torch
from ray.data.collate_fn import NumpyBatchCollateFn
from ray.data.iterator import _IterableFromIterator
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from .._internal.constants import verbose
from ..errors import EmptyText, NonFiniteValues
from ..registry.huggingface_flavor import CAUSAL_LM, REGRESSION, TOKEN, load_pretrained
from ..registry.huggingface_lm import is_adapter, load_adapter
from .checkpoint import _join_optimizer, _split_optimizer, get_checkpoint
from .devices import all_sum
from .hub_offline import hub_offline
from .huggingface_rows import EMPTY_COLUMN, IGNORED_LABEL, TRUNCATED_COLUMN
from .shuffling import shuffle_kwargs

__all__ = ["HFSpec", "huggingface_loop", "restore_hf_checkpoint"]

logger = logging.getLogger("pinnacle_ray.trainers")

# Our checkpoint layout beside save_pretrained's files: no pickles.
OPTIMIZER_TENSORS = "optimizer.safetensors"
RESUME_STATE = "resume_state.json"
TRAINER_STATE = "trainer_state.json"
# Files HF writes with torch.save (pickle); we store their content safely instead.
_PICKLED_GLOBS = ("*.pt", "*.pth", "*.bin")


# train_loop_config key: the pretrained model folder shipped to workers on other nodes
# (a ShippedFolder), when the cluster has them.
PRETRAINED_KEY = "_pinnacle_pretrained"


@dataclass(frozen=True)
class HFSpec:
    """What every worker needs, decided in the driver."""

    model: str
    task: str
    labels: list[Any] | None
    training_args: dict[str, Any]
    max_steps: int
    steps_per_epoch: int
    eval_steps: int
    has_valid: bool
    pad_token_id: int
    listen: str | None
    greater_is_better: bool = False
    early_stopping_patience: int | None = None
    early_stopping_threshold: float = 0.0
    text_columns: list[str] = field(default_factory=list)
    seed: int = 0
    use_gpu: bool = False
    start_step: int = 0  # resumed from a registered checkpoint: its step
    start_epoch: int = 0  # and the epochs it had done (epochs count from the first run)
    peft: dict[str, Any] | None = None  # LoRA settings (LoraConfig fields), causal-lm only
    shuffle: bool = True  # a new row order every epoch, from seed (see shuffling.py)

    def epoch_of(self, step: int) -> tuple[int, bool]:
        """(epoch from 0, whether ``step`` closes it); this run's epochs have
        ``steps_per_epoch`` steps from ``start_step`` on."""
        done = step - self.start_step
        return self.start_epoch + max(0, done - 1) // self.steps_per_epoch, (
            done > 0 and done % self.steps_per_epoch == 0
        )


class PadCollate(NumpyBatchCollateFn):
    """Tokenized rows -> model inputs padded to the batch's longest row; refuses empty texts
    and missing labels (the driver then counts them over the whole query). Token
    classification labels (one per token) are padded with -100, which the loss skips; a
    causal LM's labels are its input ids, padded the same way."""

    def __init__(self, pad_token_id: int, task: str) -> None:
        super().__init__()
        self.pad_token_id = pad_token_id
        self.task = task
        self.rows = 0
        self.truncated = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        empty = int(np.asarray(batch[EMPTY_COLUMN]).sum())
        if empty:
            raise EmptyText(
                f"{empty} empty or NULL text(s) in a batch of {len(batch[EMPTY_COLUMN])}"
            )
        self.rows += len(batch[EMPTY_COLUMN])
        self.truncated += int(np.asarray(batch[TRUNCATED_COLUMN]).sum())
        out: dict[str, torch.Tensor] = {}
        width = max((len(r) for r in batch["input_ids"]), default=0)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        if self.task == TOKEN:
            names.append("labels")
        for name in names:
            if name not in batch:
                continue
            pad = {"input_ids": self.pad_token_id, "labels": IGNORED_LABEL}.get(name, 0)
            matrix = np.full((len(batch[name]), width), pad, dtype=np.int64)
            for i, row in enumerate(batch[name]):
                matrix[i, : len(row)] = row
            out[name] = torch.from_numpy(matrix)
        if self.task == CAUSAL_LM:
            labels = out["input_ids"].clone()
            labels[out["attention_mask"] == 0] = IGNORED_LABEL
            out["labels"] = labels
        elif self.task != TOKEN:
            labels = np.asarray(batch["labels"], dtype=np.float64)
            if not np.isfinite(labels).all():
                raise NonFiniteValues("NULL or NaN labels in a batch")
            dtype = torch.float32 if self.task == REGRESSION else torch.int64
            out["labels"] = torch.tensor(labels, dtype=dtype)
        return out


class EpochEnds(TrainerCallback):
    """Evaluate, log and save at every epoch's end and at the last step, so that each
    epoch has a checkpoint (``epoch_<n>`` handles) whatever ``eval_steps`` is."""

    def __init__(self, spec: HFSpec) -> None:
        super().__init__()
        self.spec = spec

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.spec.epoch_of(state.global_step)[1] or state.global_step >= state.max_steps:
            control.should_log = True
            control.should_save = True
            control.should_evaluate = self.spec.has_valid
        return control


class SafeReport(RayTrainReportCallback):
    """Ray's report callback, writing the checkpoint without pickles: the model and tokenizer
    as ``save_pretrained`` wrote them, the optimizer as safetensors, the scheduler and
    trainer state as JSON. Only rank 0 uploads files; every rank reports the metrics.

    A checkpoint (a full model) is written only where a handle may need it: at an epoch's
    end, at the last step, and when an evaluation improves the listened metric (``best``);
    any other evaluation reports its metrics alone, so the run's storage does not hold a
    model per evaluation."""

    def __init__(self, spec: HFSpec, collate: PadCollate) -> None:
        super().__init__()
        self.spec = spec
        self.collate = collate
        self.best: float | None = None  # the listened metric's best checkpointed value

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if not control.should_save:
            return control
        metrics = self.metrics(state)
        if metrics["epoch_done"] or state.global_step >= state.max_steps or self._improves(metrics):
            return control
        control.should_save = False  # same decision on every rank: the metrics are gathered
        ray.train.report(self._with_rows(metrics))
        return control

    def _improves(self, metrics: dict[str, Any]) -> bool:
        value = metrics.get(self.spec.listen) if self.spec.listen else None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.spec.greater_is_better else value < self.best

    def _with_rows(self, metrics: dict[str, Any]) -> dict[str, Any]:
        # On this worker's device (ray.train.torch.get_device()): NCCL refuses CPU tensors.
        rows, truncated = all_sum([self.collate.rows, self.collate.truncated])
        metrics["data/rows_read"], metrics["data/truncated"] = int(rows), int(truncated)
        return metrics

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        metrics = self._with_rows(self.metrics(state))
        if self._improves(metrics):
            self.best = float(metrics[self.spec.listen])
        if ray.train.get_context().get_world_rank() != 0:
            ray.train.report(metrics)
            return
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        with tempfile.TemporaryDirectory() as tmp:
            # Flat, not in Ray's "checkpoint/" subfolder: the folder is the registered model.
            shutil.copytree(
                source, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_PICKLED_GLOBS)
            )
            save_state_safely(Path(tmp), kwargs.get("optimizer"), kwargs.get("lr_scheduler"))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        shutil.rmtree(source, ignore_errors=True)  # reported; the worker's disk needs no copy

    def metrics(self, state: Any) -> dict[str, Any]:
        """The latest value of every logged metric, named ``train/loss``, ``valid/<name>``,
        with the step, the epoch (from 0) and whether it closed that epoch."""
        out: dict[str, Any] = {}
        for log in state.log_history:
            for key, value in log.items():
                if key == "loss":
                    out["train/loss"] = value
                elif key.startswith("eval_") and key.endswith(("_runtime", "_per_second")):
                    out[f"timing/valid_{key[5:]}"] = value
                elif key.startswith("eval_"):
                    out[f"valid/{key[5:]}"] = value
                    if key == "eval_loss" and self.spec.task == CAUSAL_LM:
                        out["valid/perplexity"] = math.exp(min(value, 50.0))
                elif key in ("learning_rate", "grad_norm"):
                    out[key] = value
        step = int(state.global_step)
        out["step"] = step
        out["epoch"], out["epoch_done"] = self.spec.epoch_of(step)
        return out


def save_state_safely(directory: Path, optimizer: Any, scheduler: Any) -> None:
    """The optimizer's tensors as safetensors and its structure with the scheduler's state
    as JSON, into ``directory`` (beside HF's ``trainer_state.json``)."""
    state: dict[str, Any] = {}
    if optimizer is not None:
        tensors, structure = _split_optimizer(optimizer.state_dict())
        save_file(tensors, str(directory / OPTIMIZER_TENSORS))
        state["optimizer"] = structure
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    (directory / RESUME_STATE).write_text(json.dumps(state))


def restore_hf_checkpoint(checkpoint_dir: str | Path, target: str | Path) -> Path:
    """Turn our safe checkpoint into the folder ``Trainer.train(resume_from_checkpoint=)``
    reads: the optimizer and scheduler state written back with ``torch.save`` locally (from
    tensors and JSON we wrote; transformers reads them with ``weights_only=True``)."""
    source = Path(checkpoint_dir)
    if (source / RayTrainReportCallback.CHECKPOINT_NAME).is_dir():
        source = source / RayTrainReportCallback.CHECKPOINT_NAME
    target = Path(target)
    shutil.copytree(source, target, dirs_exist_ok=True)
    state_file = source / RESUME_STATE
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if "optimizer" in state:
            tensors = load_file(str(source / OPTIMIZER_TENSORS))
            torch.save(_join_optimizer(tensors, state["optimizer"]), target / "optimizer.pt")
        if "scheduler" in state:
            torch.save(state["scheduler"], target / "scheduler.pt")
    return target


def _compute_metrics(task: str) -> Any:
    if task == CAUSAL_LM:  # the loss (and its perplexity) only: no vocabulary-wide logits kept
        return None

    def metrics(prediction: Any) -> dict[str, float]:
        logits = np.asarray(prediction.predictions)
        labels = np.asarray(prediction.label_ids)
        if task == REGRESSION:
            error = logits.reshape(len(labels), -1)[:, 0] - labels
            return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.abs(error).mean())}
        if task == TOKEN:  # over the tagged tokens (each word's first sub-token)
            tagged = labels != IGNORED_LABEL
            right = logits.argmax(axis=-1)[tagged] == labels[tagged]
            return {"accuracy": float(right.mean()) if right.size else 0.0}
        return {"accuracy": float((logits.argmax(axis=-1) == labels).mean())}

    return metrics


def _training_args(spec: HFSpec, output_dir: str) -> Any:
    from transformers import TrainingArguments

    args = dict(spec.training_args)
    # Every parameter of a classification/regression head model takes part in each step;
    # searching for unused ones costs a graph traversal per step (pass True if yours skips some).
    args.setdefault("ddp_find_unused_parameters", False)
    # Sequence classification and regression heads return a per-batch mean loss; averaging
    # "tokens" across devices (for language-model losses) would scale it by the world size.
    args.setdefault("average_tokens_across_devices", False)
    # Hugging Face's own integrations (report_to="mlflow", "tensorboard", ...) are the
    # user's choice; metrics reach Ray Train (and the registry) either way.
    args.setdefault("report_to", "none")
    args.update(
        output_dir=output_dir,
        max_steps=spec.max_steps,
        eval_strategy="steps" if spec.has_valid else "no",
        eval_steps=spec.eval_steps if spec.has_valid else None,
        save_strategy="steps",
        save_steps=spec.eval_steps,
        logging_strategy="steps",
        logging_steps=min(int(args.get("logging_steps") or spec.eval_steps), spec.eval_steps),
        disable_tqdm=True,
        save_total_limit=None,
        load_best_model_at_end=False,
        # Our epochs count from the first run; a resumed run starts its data pass afresh
        # (skipping batches of an iterable shard would re-read them just to drop them).
        ignore_data_skip=True,
        remove_unused_columns=False,
        seed=spec.seed,
        # accelerate treats a CPU run as distributed (gloo, on Ray's process group) only
        # with use_cpu; without it each CPU worker would train alone.
        use_cpu=not spec.use_gpu,
    )
    if spec.task == CAUSAL_LM:
        args["prediction_loss_only"] = True
    if spec.listen and spec.listen.startswith("valid/") and spec.has_valid:
        args["metric_for_best_model"] = spec.listen.split("/", 1)[1]
        args["greater_is_better"] = spec.greater_is_better
    return TrainingArguments(**args)


def huggingface_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` for :class:`pinnacle_ray.HuggingFaceTrainer`: never
    downloads (the Hub is offline for this task only; the pooled worker gets it back), and
    transformers is quiet for this task only."""
    with hub_offline(), quiet_transformers():
        _train(config)


def _train(config: dict[str, Any]) -> None:
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, set_seed

    spec: HFSpec = config["spec"]
    if config.get(PRETRAINED_KEY) is not None:  # the driver's folder, copied here if elsewhere
        spec = replace(spec, model=config[PRETRAINED_KEY].local_path())
    tokenizer = config["tokenizer"]
    set_seed(spec.seed)
    work = tempfile.mkdtemp(prefix="pinnacle-hf-")
    try:
        start = get_checkpoint()  # Ray's own after a restart, else the registered one
        resume_dir = None
        if start is not None:
            with start.as_directory() as directory:
                resume_dir = str(restore_hf_checkpoint(directory, Path(work, "resume")))
            if is_adapter(resume_dir):  # a LoRA run: its base, with the adapter trainable
                base = load_pretrained(spec.model, spec.task)
                model = load_adapter(base, resume_dir, trainable=True)
            else:
                model = load_pretrained(resume_dir, spec.task)
        elif spec.task == CAUSAL_LM:
            model = load_pretrained(spec.model, spec.task)
            if spec.peft is not None:
                from .huggingface_causal import with_lora

                model = with_lora(model, spec.peft, spec.task)
        elif spec.task == REGRESSION:
            model = load_pretrained(spec.model, num_labels=1, problem_type="regression")
        else:
            assert spec.labels is not None
            extra = {} if spec.task == TOKEN else {"problem_type": "single_label_classification"}
            model = load_pretrained(
                spec.model,
                spec.task,
                num_labels=len(spec.labels),
                id2label={i: str(v) for i, v in enumerate(spec.labels)},
                label2id={str(v): i for i, v in enumerate(spec.labels)},
                ignore_mismatched_sizes=True,
                **extra,
            )
        args = _training_args(spec, str(Path(work, "out")))
        collate = PadCollate(spec.pad_token_id, spec.task)
        train = epoch_batches(
            ray.train.get_dataset_shard("train"),
            spec,
            args.per_device_train_batch_size,
            collate,
            ray.train.get_context().get_world_rank(),
        )
        valid = None
        if spec.has_valid:
            valid = ray.train.get_dataset_shard("valid").iter_torch_batches(
                batch_size=args.per_device_eval_batch_size,
                collate_fn=PadCollate(spec.pad_token_id, spec.task),
            )
        callbacks: list[Any] = [EpochEnds(spec)]
        if spec.early_stopping_patience is not None:
            callbacks.append(
                EarlyStoppingCallback(spec.early_stopping_patience, spec.early_stopping_threshold)
            )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=valid,
            processing_class=tokenizer,
            compute_metrics=_compute_metrics(spec.task),
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # prints every log dict; Ray gets them
        trainer.add_callback(SafeReport(spec, collate))
        trainer = prepare_trainer(trainer)
        trainer.train(resume_from_checkpoint=resume_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def epoch_batches(
    shard: Any, spec: HFSpec, batch_size: int, collate: Any, rank: int
) -> Iterable[Any]:
    """Worker ``rank``'s training batches of ``shard`` as an iterable the Trainer passes
    over once per epoch, each pass in that epoch's shuffled order (epochs counted from the
    first run, so a resumed run draws what a straight one would).

    Ray's own iterable type, because ``prepare_trainer`` feeds only that to the Trainer
    as it is (anything else would be batched again by a torch DataLoader)."""
    passes = iter(range(spec.start_epoch, 2**62))

    def one_pass() -> Any:
        order = shuffle_kwargs(spec.shuffle, spec.seed, next(passes), rank)
        return iter(
            shard.iter_torch_batches(
                batch_size=batch_size,
                collate_fn=collate,
                prefetch_batches=2,
                **order,
            )
        )

    return _IterableFromIterator(one_pass)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Keep transformers' warnings, drop its per-load reports and progress bars (one set per
    worker would interleave on the driver's console), unless PINNACLE_RAY_VERBOSE is set.

    Scoped to the task: Ray pools its workers, so the verbosity and progress-bar setting a
    later task of the same worker sees are given back on exit, error or not.
    """
    if verbose():
        yield
        return
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def steps_for(
    rows: int, workers: int, batch_size: int, accumulation: int, epochs: float
) -> tuple[int, int]:
    """(steps per epoch, total steps) for ``rows`` split equally among ``workers``."""
    per_worker = rows // workers
    batches = max(1, math.ceil(per_worker / batch_size))
    per_epoch = max(1, batches // max(1, accumulation))
    return per_epoch, max(1, math.ceil(epochs * per_epoch))
