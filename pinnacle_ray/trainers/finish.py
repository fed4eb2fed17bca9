"""The one way every trainer ends a run: register it (or say why not) and hand back its
``TrainResult``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray.train

from .base import TrainResult, warn_unregistered
from .registration import RunRecord, check_listened
from .run_folder import release_run_folder
from .tracking import Tracking

__all__ = ["finish_run"]


def finish_run(
    record: RunRecord,
    store: Any,
    tracking: Tracking,
    *,
    register: bool,
    metrics: dict[str, Any],
    checkpoint: ray.train.Checkpoint | None,
    path: str | None = None,
    ray_result: Any = None,
    release_folder: bool = False,
    after_register: Callable[[], None] | None = None,
) -> TrainResult:
    """The ``TrainResult`` of a finished run, registered as the next version of
    ``record.name`` in ``store`` when ``register`` and the run reported a checkpoint.

    ``release_folder``: the run's folder is the trainer's own (no ``run_config`` given), so
    once registered it is removed and the result's checkpoint is the registered copy.
    ``after_register`` runs once registering has been tried, whether it worked or not
    (e.g. to remove a scratch folder the registry has copied). A run that is not
    registered still has its listened metric checked (``MetricNotReported``), and a run on
    a plain ``ray.data.Dataset`` says once that there is no registry to go to. The
    tracker (MLflow) is told the registered version, or None.
    """
    version = None
    if register and store is not None and record.reported:
        try:
            registered = record.register(store)
        finally:
            if after_register is not None:
                after_register()
        version = registered.version if registered is not None else None
        if release_folder and version is not None:
            checkpoint = release_run_folder(store, record.name, version, ray_result)
    else:
        if record.reported:
            check_listened(record.reported, record.listen)
        if register and store is None:
            warn_unregistered(record.name)
    tracking.link(record.name, version)
    return TrainResult(
        name=record.name,
        metrics=metrics,
        checkpoint=checkpoint,
        version=version,
        path=path,
        ray_result=ray_result,
        record=record,
        reports=record.history,
    )
