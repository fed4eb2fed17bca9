"""How the managed torch loop takes an optimizer step: mixed precision, gradient clipping,
gradient accumulation and a learning-rate scheduler, each checked once in the driver.

- ``precision``: ``"32"`` (or None, the default), ``"bf16-mixed"`` (torch autocast to
  bfloat16, on CPU and GPU), ``"16-mixed"`` (float16 autocast with a gradient scaler: GPU only);
- ``grad_clip_norm``: the gradients' total norm is clipped to it before each step;
- ``accumulate_grad_batches``: one optimizer step per that many batches (the last, partial
  group of an epoch steps too);
- ``scheduler_cls`` (a ``torch.optim.lr_scheduler`` name or class) with ``scheduler_kwargs``,
  stepped after every optimizer step (``scheduler_interval="step"``) or at every epoch's end
  (``"epoch"``); by default per step for schedulers built to run per batch (OneCycleLR,
  CyclicLR), per epoch otherwise.

Bad names and values raise :class:`~pinnacle_ray.ConfigError` naming the parameter and the
valid choices, before any worker starts.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import ConfigError

__all__ = [
    "PRECISIONS",
    "Updates",
    "autocast",
    "check_accumulation",
    "check_grad_clip_norm",
    "check_precision",
    "check_scheduler",
    "grad_scaler",
    "jsonable_state",
    "scheduler_class",
]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
INTERVALS = ("step", "epoch")
# Schedulers whose schedule is laid out in optimizer steps (batches), not epochs.
_PER_STEP = ("OneCycleLR", "CyclicLR")
# Schedulers whose step() needs a metric: not driven by the managed loop.
_NEEDS_METRIC = ("ReduceLROnPlateau",)


def check_precision(precision: Any, use_gpu: bool) -> str:
    """``precision`` as one of :data:`PRECISIONS` (None: ``"32"``); ``"16-mixed"`` needs
    GPU workers (float16 autocast on CPU is neither supported everywhere nor useful)."""
    value = "32" if precision is None or precision == 32 else precision
    if value not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is not known; use one of {list(PRECISIONS)}")
    if value == "16-mixed" and not use_gpu:
        raise ConfigError(
            "precision='16-mixed' needs GPU workers, but use_gpu=False: pass "
            "scaling_config=ScalingConfig(..., use_gpu=True), or use precision='bf16-mixed' "
            "(CPU autocast) or '32'"
        )
    return value


def check_grad_clip_norm(value: Any) -> float | None:
    """``grad_clip_norm`` as a positive finite float, or None (no clipping)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"grad_clip_norm must be a positive number or None, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"grad_clip_norm must be finite, got {value!r}")
    return float(value)


def check_accumulation(value: Any) -> int:
    """``accumulate_grad_batches`` as a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"accumulate_grad_batches must be a positive integer (batches per optimizer "
            f"step), got {value!r}"
        )
    return value


def _scheduler_names() -> list[str]:
    base = torch.optim.lr_scheduler.LRScheduler
    return sorted(
        name
        for name, cls in vars(torch.optim.lr_scheduler).items()
        if isinstance(cls, type)
        and issubclass(cls, base)
        and cls is not base
        and not name.startswith("_")
        and name not in _NEEDS_METRIC
        and name not in ("ChainedScheduler", "SequentialLR")  # built from schedulers
    )


def scheduler_class(spec: Any) -> type[torch.optim.lr_scheduler.LRScheduler]:
    """A ``torch.optim.lr_scheduler`` class from its name ("StepLR") or the class itself."""
    name = spec if isinstance(spec, str) else getattr(spec, "__name__", None)
    if name in _NEEDS_METRIC:
        raise ConfigError(
            f"scheduler_cls={name!r} steps on a metric, which the managed loop does not "
            f"feed it; use one of {_scheduler_names()}, or your own train_loop_per_worker"
        )
    if isinstance(spec, str):
        cls = getattr(torch.optim.lr_scheduler, spec, None)
        if spec in _scheduler_names() and isinstance(cls, type):
            return cls
        raise ConfigError(
            f"scheduler_cls={spec!r} is not in torch.optim.lr_scheduler; use one of "
            f"{_scheduler_names()} (or pass the class)"
        )
    if isinstance(spec, type) and issubclass(spec, torch.optim.lr_scheduler.LRScheduler):
        return spec
    raise ConfigError(
        f"scheduler_cls must be a torch.optim.lr_scheduler name or class, got {type(spec).__name__}"
    )


def check_scheduler(spec: Any, kwargs: Any, interval: Any) -> str | None:
    """Check ``scheduler_cls``, ``scheduler_kwargs`` and ``scheduler_interval`` together;
    returns the interval to step at (None without a scheduler)."""
    if spec is None:
        if kwargs:
            raise ConfigError("scheduler_kwargs needs scheduler_cls (e.g. 'StepLR')")
        if interval is not None:
            raise ConfigError("scheduler_interval needs scheduler_cls (e.g. 'StepLR')")
        return None
    cls = scheduler_class(spec)
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ConfigError(f"scheduler_kwargs must be a dict, got {type(kwargs).__name__}")
    parameters = inspect.signature(cls).parameters
    known = [n for n in parameters if n != "optimizer"]
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(kwargs or {}) - set(known))
        if unknown:
            raise ConfigError(
                f"scheduler_kwargs {unknown} are not arguments of {cls.__name__}; it takes {known}"
            )
    missing = [
        n
        for n, p in parameters.items()
        if n != "optimizer"
        and p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and n not in (kwargs or {})
    ]
    if missing:
        raise ConfigError(f"scheduler_kwargs must give {missing} for {cls.__name__}")
    if interval is None:
        return "step" if cls.__name__ in _PER_STEP else "epoch"
    if interval not in INTERVALS:
        raise ConfigError(
            f"scheduler_interval={interval!r} is not known; use one of {list(INTERVALS)}"
        )
    return interval


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """torch autocast for ``precision`` on ``device`` (nothing for ``"32"``)."""
    if precision == "32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for float16 (its small range underflows gradients), else None."""
    if precision != "16-mixed":
        return None
    return torch.amp.GradScaler(device.type)


def jsonable_state(state: dict[str, Any]) -> dict[str, Any]:
    """A scheduler's or scaler's ``state_dict`` with what JSON cannot hold left out
    (functions of LambdaLR-like schedulers, which their constructor recreates)."""
    kept = {}
    for key, value in state.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


class Updates:
    """One worker's optimizer steps: backward (scaled for float16), accumulation over
    ``accumulate`` batches, clipping, the scheduler; its state goes into each checkpoint.

    ``backward(loss)`` returns True when it took an optimizer step; ``end_epoch()`` steps a
    partial accumulation group and an epoch scheduler (True when it took an optimizer step).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        *,
        precision: str = "32",
        grad_clip_norm: float | None = None,
        accumulate: int = 1,
        scheduler_cls: Any = None,
        scheduler_kwargs: dict[str, Any] | None = None,
        scheduler_interval: str | None = None,
    ) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.precision, self.clip, self.accumulate = precision, grad_clip_norm, accumulate
        self.scaler = grad_scaler(precision, device)
        self.scheduler = None
        self.interval = scheduler_interval
        if scheduler_cls is not None:
            cls = scheduler_class(scheduler_cls)
            self.scheduler = cls(optimizer, **(scheduler_kwargs or {}))
        self.pending = 0  # batches backpropagated since the last optimizer step

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The forward pass's autocast context for this precision."""
        return autocast(self.precision, self.device)

    def backward(self, loss: torch.Tensor) -> bool:
        if self.accumulate > 1:
            loss = loss / self.accumulate  # the group's gradient is its batches' mean
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        self.pending += 1
        if self.pending < self.accumulate:
            return False
        self._step()
        return True

    def end_epoch(self) -> bool:
        stepped = self.pending > 0
        if stepped:
            self._step()
        if self.scheduler is not None and self.interval == "epoch":
            self.scheduler.step()
        return stepped

    def _step(self) -> None:
        if self.clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.pending = 0
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def lr(self) -> float:
        """The learning rate of the first parameter group, as the next step uses it."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue exactly (JSON)."""
        out: dict[str, Any] = {}
        if self.scheduler is not None:
            out["scheduler"] = jsonable_state(self.scheduler.state_dict())
        if self.scaler is not None:
            out["grad_scaler"] = jsonable_state(self.scaler.state_dict())
        return out

    def load(self, extra: dict[str, Any]) -> None:
        """Restore the scheduler and scaler from a checkpoint's ``extra`` (the optimizer
        is restored with the weights)."""
        if self.scheduler is not None and "scheduler" in extra:
            self.scheduler.load_state_dict(extra["scheduler"])
        if self.scaler is not None and "grad_scaler" in extra:
            self.scaler.load_state_dict(extra["grad_scaler"])
