"""Plan a training run's resources before it starts, so it never waits forever.

Ray Train workers take their CPUs first; Ray Data's read tasks then get what is left. With
``ScalingConfig(num_workers=2)`` on 2 CPUs that is nothing, and the run hangs silently.
:func:`plan_resources` looks at the cluster first: it leaves CPU for the reads (shrinking
the workers' default share, and saying so in one line) or refuses with the numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ray.train import ScalingConfig

from ..errors import ResourceError

__all__ = [
    "ClusterResources",
    "ResourcePlan",
    "TrialPlan",
    "plan_resources",
    "plan_trials",
    "read_reserve",
]

# The smallest CPU share a worker may be given before we refuse instead.
MIN_WORKER_CPU = 0.1


@dataclass(frozen=True)
class ClusterResources:
    """What the cluster offers: total CPUs and GPUs."""

    cpus: float
    gpus: float = 0.0


@dataclass(frozen=True)
class ResourcePlan:
    """The scaling config to run with, the CPUs each read task takes, and why it changed."""

    scaling_config: ScalingConfig
    read_cpus: float
    note: str | None = None


def plan_resources(
    scaling: ScalingConfig, cluster: ClusterResources, *, reads: bool = True
) -> ResourcePlan:
    """Fit ``scaling`` (+ data reads when ``reads``) into ``cluster`` or raise ResourceError.

    A worker CPU share the user did not set is reduced to leave room for the reads; one the
    user set is kept, and refused when it leaves the reads nothing.
    """
    n = scaling.num_workers
    per_worker = dict(scaling.resources_per_worker or {})
    explicit_cpu = "CPU" in per_worker
    cpu = float(per_worker.get("CPU", 1.0))
    gpu = float(per_worker.get("GPU", 1.0 if scaling.use_gpu else 0.0))

    if gpu * n > cluster.gpus:
        raise ResourceError(
            f"{n} worker(s) x {gpu:g} GPU = {gpu * n:g} GPU(s) requested, but the cluster has "
            f"{cluster.gpus:g}; lower num_workers or set use_gpu=False"
        )
    if cpu * n > cluster.cpus and explicit_cpu:
        raise ResourceError(
            f"{n} worker(s) x {cpu:g} CPU = {cpu * n:g} CPUs requested, but the cluster "
            f"has {cluster.cpus:g}; lower num_workers or resources_per_worker['CPU']"
        )
    reserve = read_reserve(cluster.cpus) if reads else 0.0
    room = cluster.cpus - reserve
    if cpu * n <= room:
        # Two reads at a time fit in what the workers leave; never more than Ray's 1 CPU.
        return ResourcePlan(scaling, min(1.0, (cluster.cpus - cpu * n) / 2) if reads else 1.0)
    read_cpus = reserve / 2
    if explicit_cpu:
        raise ResourceError(
            f"{n} worker(s) x {cpu:g} CPU = {cpu * n:g} of the cluster's {cluster.cpus:g} CPUs "
            f"leaves {cluster.cpus - cpu * n:g} for reading the data, which needs "
            f"{reserve:g}; the run would wait forever. Set resources_per_worker="
            f"{{'CPU': {max(MIN_WORKER_CPU, room / n):.2g}}} or fewer workers"
        )
    share = room / n
    if share < MIN_WORKER_CPU:
        raise ResourceError(
            f"{n} worker(s) on {cluster.cpus:g} CPUs (with {reserve:g} kept for reading the "
            f"data) would get {share:.2g} CPU each, below {MIN_WORKER_CPU}; use fewer workers"
        )
    per_worker["CPU"] = round(share, 3)
    adjusted = dataclasses.replace(scaling, resources_per_worker=per_worker)
    note = (
        f"resources: {n} worker(s) x 1 CPU + data reads need more than the cluster's "
        f"{cluster.cpus:g} CPUs; running each worker on {share:.3g} CPU and reads on "
        f"{read_cpus:g} CPU each ({reserve:g} CPU kept for reading)"
    )
    return ResourcePlan(adjusted, read_cpus, note)


@dataclass(frozen=True)
class TrialPlan:
    """How a sweep's trials share the cluster: what one trial holds and how many run at once."""

    trial_cpus: float
    trial_gpus: float
    concurrent: int
    trials: int
    cluster: ClusterResources

    def __str__(self) -> str:
        queued = " (the others queue)" if self.concurrent < self.trials else ""
        gpus = f" and {self.trial_gpus:g} GPU(s)" if self.trial_gpus else ""
        return (
            f"{self.trials} trial(s), each holding {self.trial_cpus:.3g} CPU(s){gpus} of the "
            f"cluster's {self.cluster.cpus:g}: {self.concurrent} at a time{queued}"
        )


def plan_trials(
    trial_cpus: float,
    trial_gpus: float,
    cluster: ClusterResources,
    trials: int,
    max_concurrent: int | None = None,
) -> TrialPlan:
    """How many trials, each holding ``trial_cpus``/``trial_gpus`` while it trains (its
    workers and its data reads), run at once on ``cluster`` without waiting on each other
    forever: as many as fit, at most ``trials`` and ``max_concurrent``."""
    if trial_cpus > cluster.cpus + 1e-9 or trial_gpus > cluster.gpus + 1e-9:
        raise ResourceError(
            f"one trial needs {trial_cpus:g} CPU(s) and {trial_gpus:g} GPU(s), but the cluster "
            f"has {cluster.cpus:g} and {cluster.gpus:g}; lower the trainer's workers or CPUs"
        )
    fit = math.floor(cluster.cpus / trial_cpus + 1e-9) if trial_cpus > 0 else trials
    if trial_gpus > 0:
        fit = min(fit, math.floor(cluster.gpus / trial_gpus + 1e-9))
    concurrent = max(1, min(fit, trials, max_concurrent or trials))
    return TrialPlan(trial_cpus, trial_gpus, concurrent, trials, cluster)


def read_reserve(cpus: float) -> float:
    """CPUs kept free for Ray Data's read tasks: one on clusters of 4+ CPUs, else half."""
    return 1.0 if cpus >= 4 else 0.5
