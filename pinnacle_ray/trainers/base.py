"""What every trainer shares: the result type, query-to-dataset with planned resources, and
turning a Ray Train failure back into the user's own exception."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray.data
import ray.train
from ray.train import ScalingConfig

from .._runtime import cluster_cpus, cluster_gpus
from ..errors import ConfigError
from .resources import ClusterResources, ResourcePlan, plan_resources

__all__ = ["TrainResult", "datasets_for", "plan_for", "raise_worker_error"]

logger = logging.getLogger("pinnacle_ray.trainers")


class _Query(Protocol):
    def to_dataset(
        self, shards: int | None = None, *, num_cpus: float | None = None
    ) -> ray.data.Dataset: ...


@dataclass
class TrainResult:
    """A finished run: its name, final metrics and last checkpoint (``ray.train.Checkpoint``).

    ``version`` is the registered model version, ``None`` when the run was not registered.
    """

    name: str
    metrics: dict[str, Any]
    checkpoint: ray.train.Checkpoint | None
    version: int | None = None
    path: str | None = None
    ray_result: Any = field(default=None, repr=False)


def plan_for(scaling: ScalingConfig | None) -> ResourcePlan:
    """Fit ``scaling`` and the data reads into the current cluster; say what changed once."""
    scaling = scaling or ScalingConfig(num_workers=1)
    plan = plan_resources(scaling, ClusterResources(cluster_cpus(), cluster_gpus()))
    if plan.note:
        logger.warning(plan.note)
    return plan


def datasets_for(
    queries: dict[str, _Query | ray.data.Dataset | None], plan: ResourcePlan
) -> dict[str, ray.data.Dataset]:
    """Ray Datasets for the named queries, their read tasks sized by ``plan``."""
    out = {}
    for name, query in queries.items():
        if query is None:
            continue
        if isinstance(query, ray.data.Dataset):
            out[name] = query
        elif hasattr(query, "to_dataset"):
            dataset = query.to_dataset(num_cpus=plan.read_cpus)
            # Each epoch re-reads the shards in Ray Train's split coordinator, which would
            # reprint Ray Data's progress bars per epoch; training reports show progress.
            dataset.context.enable_progress_bars = False
            out[name] = dataset
        else:
            raise ConfigError(
                f"{name}= must be a query (store.table / store.sql) or a ray.data.Dataset, "
                f"got {type(query).__name__}"
            )
    return out


def raise_worker_error(exc: BaseException) -> None:
    """Re-raise the first worker's own exception (same type and message) instead of Ray's
    wrapper, with a note saying which worker raised it; return if there is none."""
    failures = getattr(exc, "worker_failures", None)
    if not failures:
        return
    rank, error = sorted(failures.items())[0]
    cause = getattr(error, "cause", None)  # RayTaskError keeps the user's exception here
    original = cause if isinstance(cause, BaseException) else error
    original.add_note(f"(raised in Ray Train worker {rank}; {len(failures)} worker(s) failed)")
    raise original from None
