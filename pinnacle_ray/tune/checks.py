"""What a sweep checks before any trial starts: its settings, its name, and that the
queries have the trainer's columns and the trainer reports the metric, so that a typo
fails in a second instead of in every one of 8 trials."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._internal.names import validate_name
from ..errors import ColumnNotFound, ConfigError, MetricNotReported

if TYPE_CHECKING:
    from ..trainers import Trainer

__all__ = ["check_columns", "check_metric", "check_settings", "sweep_name"]


def check_settings(
    metric: Any, mode: Any, num_samples: Any, max_concurrent: Any
) -> tuple[str, str, int]:
    """``metric``, ``mode`` and ``num_samples`` once checked (ConfigError naming the value)."""
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"metric must be the name of a reported metric, got {metric!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or max_concurrent < 1
    ):
        raise ConfigError(
            f"max_concurrent_trials must be a positive integer or None, got {max_concurrent!r}"
        )
    return metric, mode, num_samples


def sweep_name(name: str | None, trainer: Trainer, store: Any) -> str:
    """The sweep's name (``<model>-sweep-<time>`` by default), refused when ``store``
    already recorded a sweep of that name."""
    if name is None:
        name = f"{trainer.name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    name = validate_name(name, "sweep name")
    if store is not None and store.models.sweeps(name):
        raise ConfigError(
            f"a sweep named {name!r} is already recorded in {store.url}; give this one "
            "another name (store.models.sweeps(name) shows the earlier one)"
        )
    return name


def check_columns(trainer: Trainer, train: Any, valid: Any) -> None:
    """ColumnNotFound for a feature or label the queries lack, before 8 trials find out."""
    given = trainer.get_params()
    if given.get("transform") or given.get("preprocess"):
        return  # a torch transform/preprocess makes its columns from the query's
    wanted = [*(given.get("features") or [])]
    label = given.get("label")
    if isinstance(label, str):
        wanted.append(label)
    for role, query in (("train", train), ("valid", valid)):
        schema_of = getattr(query, "schema", None)
        if not wanted or not callable(schema_of):
            continue
        schema = schema_of()
        names = list(getattr(schema, "names", []) or [])
        missing = [c for c in wanted if names and c not in names]
        if missing:
            raise ColumnNotFound(
                f"the {role} query has no column(s) {missing}; its columns are {names}"
            )


def check_metric(trainer: Trainer, train: Any, valid: Any, metric: str) -> None:
    """MetricNotReported when the trainer says up front that it never reports ``metric``."""
    names = trainer.reported_metrics(train, valid)
    if names is not None and metric not in names:
        raise MetricNotReported(
            f"metric={metric!r} is never reported by {type(trainer).__name__} on these "
            f"queries; it reports {sorted(names)}"
        )
