"""A sweep's plan, made once for all its trials: where the trials' runs are stored, what
each trial runs on (its workers' resources planned once, so trials neither re-plan nor
re-warn) and what Tune reserves for it, so a sweep never waits forever on 2 CPUs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ray.train.constants import DEFAULT_STORAGE_PATH
from ray.tune import PlacementGroupFactory

from ..trainers.cluster_shape import ClusterShape
from ..trainers.resources import plan_resources, read_reserve
from ..trainers.storage import StorageChoice, decide, user_storage_path
from .params import with_arguments

if TYPE_CHECKING:
    from ..trainers import Trainer

__all__ = [
    "TRIAL_BUNDLE",
    "per_trial",
    "sweep_storage",
    "trains",
    "trial_count",
    "trial_resources",
    "trial_storage",
]

# What a trial driving a Ray Train run reserves in Tune: memory, no CPU.
TRIAL_BUNDLE = {"memory": 256 * 1024 * 1024}


def sweep_storage(trainer: Trainer, store: Any, name: str) -> StorageChoice:
    """Where the trials' runs (and Tune's own trial checkpoints) are stored: the trainer's
    ``run_config.storage_path`` when the user set one, else the datastore's storage as for
    a fit; refused (``StorageNotShared``) when trials on other nodes could not reach it."""
    run_config = trainer.run_config
    choice = decide(store, run_config, what=f"sweep {name!r}")
    if choice.default and run_config is not None and user_storage_path(run_config) is not None:
        return StorageChoice(str(run_config.storage_path), run_config.storage_filesystem)
    return choice


def trial_storage(trainer: Trainer, storage: StorageChoice, experiment: str) -> StorageChoice:
    """Where each trial's own run (Ray Train's, or a scikit-learn fit's) keeps its
    checkpoints: inside the sweep's Tune folder ``experiment``, so that one removal once
    the best trial is registered takes every trial's, finished, stopped or failed. A
    trainer with a ``run_config`` of its own keeps its runs where that says."""
    if trainer.run_config is not None:
        return storage
    base = storage.storage_path if storage.storage_path is not None else DEFAULT_STORAGE_PATH
    return StorageChoice(f"{str(base).rstrip('/')}/{experiment}", storage.storage_filesystem)


def per_trial(trainer: Trainer, cluster: ClusterShape) -> tuple[Trainer, float, float, str | None]:
    """The trainer each trial runs (its workers' resources planned once, so trials do not
    re-plan or re-warn), and the CPUs/GPUs one trial holds while it trains."""
    scaling = trainer.scaling
    if scaling is None:  # one fit task (scikit-learn): its CPUs
        return trainer, float(trainer.get_params().get("num_cpus") or 1), 0.0, None
    plan = plan_resources(scaling, cluster)
    scaling = plan.scaling_config
    per_worker = dict(scaling.resources_per_worker or {})
    per_worker.setdefault("CPU", 1.0)
    scaling = dataclasses.replace(scaling, resources_per_worker=per_worker)
    n = scaling.min_workers  # an elastic trial starts with its minimum and grows into room
    cpus = float(per_worker["CPU"]) * n + read_reserve(cluster.total("CPU"))
    gpus = float(per_worker.get("GPU", 1.0 if scaling.use_gpu else 0.0)) * n
    return with_arguments(trainer, scaling_config=scaling), cpus, gpus, plan.note


def trial_resources(trainer: Trainer, trial_cpus: float) -> PlacementGroupFactory:
    """What Tune reserves per trial. The trial's own process only drives the run, so it
    asks for no CPU (the head bundle is empty). A Ray Train run places its workers in a
    placement group of its own, so the trial reserves only its memory; a fit task (which
    Tune schedules inside the trial's placement group) gets a bundle with its CPUs."""
    if trains(trainer):
        return PlacementGroupFactory([{}, TRIAL_BUNDLE])
    return PlacementGroupFactory([{}, {"CPU": trial_cpus}])


def trains(trainer: Trainer) -> bool:
    """Whether the trainer runs Ray Train workers (else one fit task)."""
    return trainer.scaling is not None


def trial_count(space: Mapping[str, Any], num_samples: int) -> int:
    """How many trials Tune runs: ``num_samples`` times every grid search's size."""
    grids = [len(v["grid_search"]) for v in space.values() if isinstance(v, Mapping)]
    return num_samples * math.prod(grids)
