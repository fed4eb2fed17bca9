"""The managed torch loop: what ``pr.TorchTrainer(model=...)`` runs on every Ray Train worker.

It streams batches from the worker's shard, steps the optimizer under DDP, validates every
``validation_interval`` steps and at each epoch's end, reports metrics with a safe
checkpoint, and stops early when the listened metric stops improving. Everything it needs
to continue (weights, optimizer, step, epoch, early-stopping state) is in each checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from ..errors import ConfigError, NonFiniteValues
from ..registry.torch_inputs import call_model, model_inputs
from .checkpoint import get_checkpoint, load_state, report
from .devices import all_sum
from .early_stopping import EarlyStopping
from .features import non_finite_message
from .first_batch import EarlyFirst
from .objectives import Objective, resolve_objective
from .replay import VALID_REPLAY_BYTES, Replay
from .shuffling import shuffle_kwargs
from .torch_metrics import compute_metric_values, gather_arrays
from .torch_step import Updates

__all__ = ["LoopSettings", "managed_loop", "optimizer_class", "resume_position"]


@dataclass(frozen=True)
class LoopSettings:
    """Everything the managed loop needs besides the model, checked in the driver."""

    features: list[str]
    label: str | None
    objective: Any = "mse"
    optimizer_cls: Any = "Adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 256
    epochs: int | None = 1
    max_iterations: int | None = None
    validation_interval: int | None = None
    listen: str | None = "valid/loss"
    mode: str = "min"
    no_improve_then_stop: int | None = None
    has_valid: bool = True
    seed: int = 0
    prefetch_batches: int = 2
    # How the model is called ("singleton", "*args", "**kwargs"), and what builds its inputs
    # from a numpy batch on the worker (None: the features, as the signature says).
    signature: str = "singleton"
    collate_fn: Any = None
    # {name: fn(predictions, targets)}, reported as valid/<name> at every validation.
    metric_values: dict[str, Any] = field(default_factory=dict)
    # Training shard only: drop an incomplete last batch; rows in the local shuffle buffer.
    drop_last: bool = False
    local_shuffle_buffer_size: int | None = None
    # A new row order every epoch, seeded by seed, epoch and rank (see shuffling.py).
    shuffle: bool = True
    # How each optimizer step is taken (see torch_step.py).
    precision: str = "32"
    grad_clip_norm: float | None = None
    accumulate_grad_batches: int = 1
    scheduler_cls: Any = None
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    scheduler_interval: str | None = None
    # The validation rows are the same at every validation (read once, no transform): the
    # worker keeps its first pass's batches and replays them (see replay.py).
    replay_valid: bool = False


def optimizer_class(spec: Any) -> type[torch.optim.Optimizer]:
    """``torch.optim`` class from a name ("Adam") or the class itself."""
    if isinstance(spec, str):
        cls = getattr(torch.optim, spec, None)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            return cls
        known = sorted(
            n
            for n in dir(torch.optim)
            if isinstance(getattr(torch.optim, n), type)
            and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
            and n != "Optimizer"
        )
        raise ConfigError(f"optimizer_cls={spec!r} is not in torch.optim; use one of {known}")
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        return spec
    raise ConfigError(
        f"optimizer_cls must be a torch.optim name or class, got {type(spec).__name__}"
    )


def resume_position(extra: dict[str, Any]) -> tuple[int, int]:
    """(step, epoch) to continue from, given a checkpoint's ``extra``: the epoch after it
    when the checkpoint closed its epoch, else that epoch again from its start."""
    step = int(extra.get("step", 0))
    return step, int(extra.get("epoch", 0)) + (1 if extra.get("epoch_done") else 0)


class _Collate(NumpyBatchCollateFn):
    """A numpy batch -> (model inputs, label tensor), refusing NaN/inf/NULL: the inputs are
    the user's ``collate_fn(batch)``, or the features shaped for the model's signature."""

    def __init__(self, settings: LoopSettings, label_dtype: torch.dtype) -> None:
        super().__init__()
        self.settings, self.label_dtype = settings, label_dtype

    def __call__(self, batch: dict[str, np.ndarray]) -> tuple[Any, torch.Tensor]:
        s = self.settings
        assert s.label is not None
        if s.label not in batch:
            raise ConfigError(
                f"label column {s.label!r} is not in the batch; its columns are {list(batch)}"
                " (a transform= or preprocess= must keep it)"
            )
        y = np.asarray(batch[s.label], dtype=np.float64)
        if not np.isfinite(y).all():
            found = {s.label: int((~np.isfinite(y)).sum())}
            raise NonFiniteValues(non_finite_message(found, "a batch"))
        if s.collate_fn is not None:
            inputs = _tensors(s.collate_fn(batch))
        else:
            inputs = _tensors(model_inputs(batch, s.features, s.signature))
        return inputs, torch.tensor(y, dtype=self.label_dtype)


def _tensors(value: Any, device: torch.device | None = None) -> Any:
    """``value`` (an array, tensor, or a tuple/list/dict of them) as tensors on ``device``."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value if device is None else value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _tensors(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_tensors(v, device) for v in value)
    return value


class _Clock:
    """Seconds spent per phase on this worker, reported as ``timing/<phase>_s``."""

    def __init__(self) -> None:
        self.first_batch = True
        self.loop_started_at = time.time()
        # Wall clock of this worker's first optimizer step in this run (time to first step).
        self.first_step_at: float | None = None
        self.totals: dict[str, float] = dict.fromkeys(
            ("startup", "read", "steps", "validate", "checkpoint"), 0.0
        )

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.totals[phase] += now - since
        return now

    def stepped(self) -> None:
        """Note an optimizer step (only the first one's time is kept)."""
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def metrics(self) -> dict[str, float]:
        stamps = {"timing/loop_started_at": self.loop_started_at, "timing/reported_at": time.time()}
        if self.first_step_at is not None:
            stamps["timing/first_step_at"] = self.first_step_at
        return {**stamps, **{f"timing/{k}_s": round(v, 4) for k, v in self.totals.items()}}


class _Run:
    """One worker's training state: model, optimizer, counters and early stopping."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.clock = _Clock()
        self.settings: LoopSettings = config["settings"]
        self.objective: Objective = resolve_objective(self.settings.objective)
        torch.manual_seed(self.settings.seed)
        # Batches, the model and every collective's tensor live here (cuda:<local rank> on a
        # GPU worker: NCCL reduces only CUDA tensors); checkpoints are written from CPU copies.
        self.device = ray.train.torch.get_device()
        self.step, self.epoch = 0, 0
        self.train_shard = ray.train.get_dataset_shard("train")
        # A fresh run (nothing to restore: epoch 0) asks for its first batch now, so Ray Data
        # starts the epoch while DDP and the optimizer are set up (see first_batch.py).
        self.early: Iterator[tuple[Any, torch.Tensor]] | None = None
        if get_checkpoint() is None:
            self.early = EarlyFirst(self.batches(self.train_shard, training=True))
        self.model = ray.train.torch.prepare_model(config["model"])
        cls = optimizer_class(self.settings.optimizer_cls)
        self.optimizer = cls(self.model.parameters(), **self.settings.optimizer_kwargs)
        s = self.settings
        self.updates = Updates(
            self.model,
            self.optimizer,
            self.device,
            precision=s.precision,
            grad_clip_norm=s.grad_clip_norm,
            accumulate=s.accumulate_grad_batches,
            scheduler_cls=s.scheduler_cls,
            scheduler_kwargs=s.scheduler_kwargs,
            scheduler_interval=s.scheduler_interval,
        )
        self.stopper = EarlyStopping(self.settings.mode, self.settings.no_improve_then_stop)
        self.loss_sum, self.loss_rows = 0.0, 0
        self.epoch_rows = 0  # rows trained on in this epoch, reported as train/rows
        self.last_reported_step = -1
        self.valid_batches = Replay(VALID_REPLAY_BYTES if self.settings.replay_valid else 0)
        self._restore()

    def _restore(self) -> None:
        # A checkpoint of this same run (a restarted worker) wins over the registered one
        # the run was asked to continue from; only the former restores early stopping.
        same_run = ray.train.get_checkpoint()
        checkpoint = get_checkpoint()
        if checkpoint is None:
            return
        with checkpoint.as_directory() as directory:
            extra = load_state(directory, self.model, self.optimizer)
        self.updates.load(extra)
        self.step, self.epoch = resume_position(extra)
        if same_run is not None and extra.get("early_stopping"):
            state = extra["early_stopping"]
            self.stopper.best, self.stopper.bad = state.get("best"), int(state.get("bad", 0))

    def batches(self, shard: Any, *, training: bool = False) -> Iterator[tuple[Any, torch.Tensor]]:
        """This epoch's batches of ``shard`` as (inputs, label) on the worker's device; its
        options (the epoch's shuffle seed among them) are fixed when this is called."""
        s = self.settings
        collate = _Collate(s, self.objective.label_dtype)
        # drop_last and the local shuffle buffer are for training; validation sees every row.
        extra: dict[str, Any] = {}
        if training:
            extra["drop_last"] = s.drop_last
            rank = ray.train.get_context().get_world_rank()
            buffer = s.local_shuffle_buffer_size
            extra.update(shuffle_kwargs(s.shuffle, s.seed, self.epoch, rank, buffer))
        pairs = shard.iter_torch_batches(
            batch_size=s.batch_size,
            collate_fn=collate,
            prefetch_batches=s.prefetch_batches,
            device=self.device,
            **extra,
        )
        # The collated pair is nested (several inputs), which Ray does not move to a device.
        device = self.device
        return ((_tensors(x, device), y.to(device, non_blocking=True)) for x, y in pairs)

    def forward(self, inputs: Any) -> torch.Tensor:
        """The model's output for ``inputs``, called as the settings' signature says."""
        with self.updates.autocast():
            output = call_model(self.model, inputs, self.settings.signature)
        # Losses and metrics in float32: autocast's bfloat16/float16 outputs lose digits.
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            return output.float()
        return output

    def done(self) -> bool:
        s = self.settings
        return (
            (s.max_iterations is not None and self.step >= s.max_iterations)
            or (s.epochs is not None and self.epoch >= s.epochs)
            or self.stopper.should_stop
        )

    def train_epoch(self, valid: Any) -> bool:
        """One pass over the training shard; True when it ran to the end of the epoch."""
        s = self.settings
        tick = time.perf_counter()
        self.model.train()
        due = False
        batches, self.early = self.early, None  # the first epoch's, started early
        if batches is None:
            batches = self.batches(self.train_shard, training=True)
        for x, y in batches:
            # The first batch's wait includes starting the shard's read pipeline.
            tick = self.clock.add("startup" if self.clock.first_batch else "read", tick)
            self.clock.first_batch = False
            if due:
                # Deferred to here so that a validation falling on the epoch's last step
                # is the epoch-end one, not a second report of the same step.
                self.checkpoint(valid, epoch_done=False)
                tick, due = time.perf_counter(), False
                if self.stopper.should_stop:
                    return False
            output = self.forward(x)
            loss = self.objective.loss(output, y)
            stepped = self.updates.backward(loss)  # an optimizer step, or one more batch
            self.step += int(stepped)
            self.loss_sum += float(loss.detach()) * len(y)
            self.loss_rows += len(y)
            self.epoch_rows += len(y)
            tick = self.clock.add("steps", tick)
            if not stepped:
                continue
            self.clock.stepped()
            due = bool(s.validation_interval) and self.step % s.validation_interval == 0
            if self.done():
                return False
        # An epoch's last, partial accumulation group steps too; then an epoch scheduler.
        self.step += int(self.updates.end_epoch())
        return True

    def evaluate(self, valid: Any) -> dict[str, float]:
        started = time.perf_counter()
        metrics: dict[str, float] = {}
        total, rows, correct = 0.0, 0, 0
        outputs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        if valid is not None:
            self.model.eval()
            with torch.no_grad():
                for x, y in self.valid_batches(lambda: self.batches(valid)):
                    output = self.forward(x)
                    if self.settings.metric_values:
                        outputs.append(_squeezed(output.detach().float().cpu().numpy()))
                        targets.append(y.cpu().numpy())
                    total += float(self.objective.loss(output, y)) * len(y)
                    rows += len(y)
                    if self.objective.name == "cross_entropy":
                        correct += int((output.argmax(dim=-1) == y).sum())
                    elif self.objective.name == "bce":
                        correct += int(((output.squeeze(-1) > 0).to(y.dtype) == y).sum())
            self.model.train()
        # The last two sum to the workers keeping their validation batches and to the
        # workers: all replay the next validation or none does (a worker streaming a split
        # the others no longer read would wait for them forever).
        replaying = float(self.valid_batches.replaying)
        train_sum, train_rows, total, rows, correct, epoch_rows, replaying, workers = all_sum(
            [self.loss_sum, self.loss_rows, total, rows, correct, self.epoch_rows, replaying, 1.0],
            self.device,
        )
        if replaying < workers:
            self.valid_batches.forget()
        if train_rows:
            metrics["train/loss"] = train_sum / train_rows
        metrics["train/rows"] = int(epoch_rows)
        if valid is not None and rows:
            metrics["valid/loss"] = total / rows
            if self.objective.classification:
                metrics["valid/accuracy"] = correct / rows
        if valid is not None and self.settings.metric_values:
            # Every worker gathers every worker's outputs, so each metric is exact.
            predictions, labels = gather_arrays(outputs), gather_arrays(targets)
            metrics.update(compute_metric_values(self.settings.metric_values, predictions, labels))
        self.loss_sum, self.loss_rows = 0.0, 0
        self.clock.add("validate", started)
        return metrics

    def checkpoint(self, valid: Any, *, epoch_done: bool) -> None:
        """Validate, then report metrics with a checkpoint (every worker calls this)."""
        if self.step == self.last_reported_step and not epoch_done:
            return
        metrics = self.evaluate(valid)
        listened = metrics.get(self.settings.listen) if self.settings.listen else None
        improved = self.stopper.improved(listened) if listened is not None else False
        metrics.update(
            step=self.step,
            epoch=self.epoch,
            epoch_done=epoch_done,
            improved=improved,
            **({"train/lr": self.updates.lr()} if self.updates.scheduler is not None else {}),
            # Wall-clock stamps (loop start, first optimizer step, this report) let a caller
            # split Ray Train's start-up from the loop's time.
            **self.clock.metrics(),
        )
        extra = {
            "step": self.step,
            "epoch": self.epoch,
            "epoch_done": epoch_done,
            "early_stopping": self.stopper.state(),
            **self.updates.state(),
        }
        started = time.perf_counter()
        report(metrics, model=self.model, optimizer=self.optimizer, extra=extra)
        self.clock.add("checkpoint", started)
        self.last_reported_step = self.step


def _squeezed(output: np.ndarray) -> np.ndarray:
    """One value per row for a single-output model, as its targets are."""
    return output[:, 0] if output.ndim == 2 and output.shape[1] == 1 else output


def managed_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of the managed mode; ``config`` holds settings and model."""
    run = _Run(config)
    valid = ray.train.get_dataset_shard("valid") if run.settings.has_valid else None
    while not run.done():
        steps_before = run.step
        finished = run.train_epoch(valid)
        if finished and run.step == steps_before and run.settings.epochs is None:
            # An empty shard would loop forever when only max_iterations bounds the run.
            run.checkpoint(valid, epoch_done=True)
            break
        if finished:
            run.checkpoint(valid, epoch_done=True)
            run.epoch += 1
            run.epoch_rows = 0
        else:
            run.checkpoint(valid, epoch_done=False)
            break
