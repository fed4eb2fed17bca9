"""The managed torch loop's data and metric options (SuperDuperDB's ``TorchTrainer``
parameters), checked once in the driver so that a bad one is refused before any worker
starts, with the parameter named.

- ``transform`` / ``preprocess``: batch (dict of numpy arrays) -> dict of numpy arrays, run
  in Ray Data before the workers;
- ``collate_fn``: batch -> model inputs, on the worker;
- ``metric_values``: ``{name: fn(predictions, targets) -> float}``, reported as
  ``valid/<name>``;
- ``loader_kwargs`` and ``prefetch_size``/``prefetch_factor``: how each worker iterates its
  shard (Ray Data's ``iter_torch_batches`` arguments).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "BUILT_IN_METRICS",
    "LOADER_KEYS",
    "check_function",
    "check_metric_values",
    "loader_settings",
]

# What each worker's iter_torch_batches is given; drop_last and the local shuffle buffer
# apply to the training shard only (validation sees every row, in order).
LOADER_KEYS = ("batch_size", "drop_last", "prefetch_batches", "local_shuffle_buffer_size")
DEFAULT_BATCH_SIZE = 256
DEFAULT_PREFETCH_BATCHES = 2
BUILT_IN_METRICS = ("loss", "accuracy")
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_function(value: Any, what: str) -> Callable[..., Any] | None:
    """``value`` when it is None or callable, else ConfigError naming ``what``."""
    if value is not None and not callable(value):
        raise ConfigError(
            f"{what} must be a function over a batch (a dict of numpy arrays), got "
            f"{type(value).__name__}"
        )
    return value


def check_metric_values(metric_values: Any) -> dict[str, Callable[..., float]]:
    """``metric_values`` as a dict of metric name -> ``fn(predictions, targets)``."""
    if metric_values is None:
        return {}
    if not isinstance(metric_values, Mapping):
        raise ConfigError(
            "metric_values must be a dict {name: fn(predictions, targets) -> float}, got "
            f"{type(metric_values).__name__}"
        )
    for name, fn in metric_values.items():
        if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
            raise ConfigError(
                f"metric_values name {name!r} must be letters, digits, '_', '.' or '-'; it is "
                "reported as valid/<name>"
            )
        if name in BUILT_IN_METRICS:
            raise ConfigError(
                f"metric_values name {name!r} clashes with the loop's own valid/{name}; "
                "choose another name"
            )
        if not callable(fn):
            raise ConfigError(
                f"metric_values[{name!r}] must be a function (predictions, targets) -> float, "
                f"got {type(fn).__name__}"
            )
    return dict(metric_values)


def loader_settings(
    loader_kwargs: Any,
    batch_size: int,
    prefetch_size: int | None,
    prefetch_factor: int | None,
) -> dict[str, Any]:
    """The loader settings (every key of :data:`LOADER_KEYS`) from ``loader_kwargs``, the
    trainer's ``batch_size`` and the seed's ``prefetch_size``/``prefetch_factor`` (both
    mean Ray Data's ``prefetch_batches``); ConfigError for an unknown key or a conflict."""
    given = dict(loader_kwargs or {})
    if loader_kwargs is not None and not isinstance(loader_kwargs, Mapping):
        raise ConfigError(f"loader_kwargs must be a dict, got {type(loader_kwargs).__name__}")
    unknown = sorted(set(given) - set(LOADER_KEYS))
    if unknown:
        raise ConfigError(
            f"loader_kwargs {unknown} are not known; the managed loop takes {list(LOADER_KEYS)}"
        )
    if "batch_size" in given and batch_size not in (DEFAULT_BATCH_SIZE, given["batch_size"]):
        raise ConfigError(
            f"batch_size={batch_size} conflicts with loader_kwargs['batch_size']="
            f"{given['batch_size']!r}; give it once"
        )
    prefetch = {
        name: value
        for name, value in (
            ("loader_kwargs['prefetch_batches']", given.get("prefetch_batches")),
            ("prefetch_size", prefetch_size),
            ("prefetch_factor", prefetch_factor),
        )
        if value is not None
    }
    for name, value in prefetch.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0 (batches), got {value!r}")
    if len(set(prefetch.values())) > 1:
        shown = ", ".join(f"{n}={v}" for n, v in prefetch.items())
        raise ConfigError(
            f"{shown} conflict: each sets how many batches Ray Data prefetches "
            "(prefetch_batches); give one"
        )
    size = given.get("batch_size", batch_size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        named = "loader_kwargs['batch_size']" if "batch_size" in given else "batch_size"
        raise ConfigError(f"{named} must be a positive integer, got {size!r}")
    drop_last = given.get("drop_last", False)
    if not isinstance(drop_last, bool):
        raise ConfigError(f"loader_kwargs['drop_last'] must be True or False, got {drop_last!r}")
    buffer = given.get("local_shuffle_buffer_size")
    if buffer is not None and (
        isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1
    ):
        raise ConfigError(
            f"loader_kwargs['local_shuffle_buffer_size'] must be a positive integer (rows) or "
            f"None, got {buffer!r}"
        )
    return {
        "batch_size": size,
        "drop_last": drop_last,
        "prefetch_batches": next(iter(prefetch.values()), DEFAULT_PREFETCH_BATCHES),
        "local_shuffle_buffer_size": buffer,
    }
