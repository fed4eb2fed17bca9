"""Plan a training run's resources before it starts, so it never waits forever.

Ray Train workers take their CPUs first; Ray Data's read tasks then get what is left. With
``ScalingConfig(num_workers=2)`` on 2 CPUs that is nothing, and the run hangs silently.
:func:`plan_resources` looks at the cluster's shape first (:mod:`.cluster_shape`): each
worker's bundle must fit on one node, up now or one the autoscaler can still add; it leaves
CPU for the reads (shrinking the workers' default share, and saying so in one line); a run
that must wait for the autoscaler goes ahead and says so; one that can never be placed is
refused with the numbers and the node types. It is a pure function of the scaling config
and the shape, so it is tested without Ray.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ray.train import ScalingConfig

from ..errors import ResourceError
from .cluster_shape import ClusterShape, NodeType

__all__ = [
    "ClusterResources",
    "ClusterShape",
    "NodeType",
    "ResourcePlan",
    "TrialPlan",
    "plan_resources",
    "plan_trials",
    "read_reserve",
    "worker_bundle",
]

# The smallest CPU share a worker may be given before we refuse instead.
MIN_WORKER_CPU = 0.1


@dataclass(frozen=True)
class ClusterResources:
    """What the cluster offers in all: CPUs and GPUs (``inf`` when an autoscaler can add
    without a limit). A single node when handed to :func:`plan_resources`."""

    cpus: float
    gpus: float = 0.0


@dataclass(frozen=True)
class ResourcePlan:
    """The scaling config to run with, the CPUs each read task takes, and why it changed
    (or that the run waits for the autoscaler)."""

    scaling_config: ScalingConfig
    read_cpus: float
    note: str | None = None


def worker_bundle(scaling: ScalingConfig) -> dict[str, float]:
    """What Ray Train reserves for one worker: ``resources_per_worker`` as given, else 1 CPU
    (1 GPU and no CPU with ``use_gpu=True``), plus 1 GPU with ``use_gpu`` unless set.

    (A ``GPU`` in ``resources_per_worker`` without ``use_gpu=True``, which would train on
    the CPU with a GPU reserved, is refused by ``ScalingConfig`` itself, naming the fix.)"""
    return {k: float(v) for k, v in scaling._resources_per_worker_not_none.items() if v}


def plan_resources(
    scaling: ScalingConfig, cluster: ClusterShape | ClusterResources, *, reads: bool = True
) -> ResourcePlan:
    """Fit ``scaling`` (+ data reads when ``reads``) into ``cluster`` or raise ResourceError.

    ``cluster`` is the cluster's shape (a ``ClusterResources`` is one node). Each worker's
    bundle must fit on one node that is up or that the autoscaler can add. An elastic
    ``num_workers=(min, max)`` must be placeable with its minimum; the reads' room is kept
    beside its maximum, because Ray Train reserves ``max`` workers' resources in Ray Data's
    autoscaling coordinator whenever they exist, and Ray Data's reads only get what is left
    (measured: 2 x 1.5 CPUs asked on 2 CPUs left the reads nothing, and the run waited
    forever with one worker started). A worker CPU share the user did
    not set is reduced to leave room for the reads; one the user set is kept, and refused
    when it leaves the reads nothing. A run that fits only once the autoscaler adds nodes
    goes ahead with a note saying so.
    """
    shape = (
        cluster
        if isinstance(cluster, ClusterShape)
        else ClusterShape.one_node(cluster.cpus, cluster.gpus)
    )
    n = scaling.min_workers
    bundle = worker_bundle(scaling)
    explicit_cpu = "CPU" in (scaling.resources_per_worker or {})
    cpu = bundle.get("CPU", 0.0)

    # Totals first (the numbers a user recognises), then per node.
    for resource, amount in bundle.items():
        if resource == "CPU":
            continue
        have = shape.total(resource)
        if amount * n > have + 1e-9:
            fix = (
                "lower num_workers or set use_gpu=False"
                if resource == "GPU"
                else (f"lower num_workers or resources_per_worker[{resource!r}]")
            )
            raise ResourceError(
                f"{n} worker(s) x {amount:g} {resource} = {amount * n:g} {resource}(s) "
                f"requested, but the cluster has {have:g} ({shape.describe()}); {fix}"
            )
    cpus = shape.total("CPU")
    if cpu * n > cpus + 1e-9 and explicit_cpu:
        raise ResourceError(
            f"{n} worker(s) x {cpu:g} CPU = {cpu * n:g} CPUs requested, but the cluster "
            f"has {cpus:g} ({shape.describe()}); lower num_workers or "
            "resources_per_worker['CPU']"
        )
    _check_one_fits(bundle, shape)

    planned, read_cpus, note = scaling, 1.0, None
    held = scaling.max_workers  # what Ray Train reserves beside the reads (see above)
    if reads and math.isfinite(cpus) and cpu > 0:
        reserve = read_reserve(cpus)
        room = cpus - reserve
        if cpu * held <= room:
            # Two reads at a time fit in what the workers leave; never more than Ray's 1 CPU.
            read_cpus = min(1.0, (cpus - cpu * held) / 2)
        else:
            read_cpus = reserve / 2
            if explicit_cpu:
                raise ResourceError(
                    f"{held} worker(s) x {cpu:g} CPU = {cpu * held:g} of the cluster's {cpus:g} "
                    f"CPUs leaves {cpus - cpu * held:g} for reading the data, which needs "
                    f"{reserve:g}; the run would wait forever. Set resources_per_worker="
                    f"{{'CPU': {max(MIN_WORKER_CPU, room / held):.2g}}} or fewer workers"
                )
            share = room / held
            if share < MIN_WORKER_CPU:
                raise ResourceError(
                    f"{held} worker(s) on {cpus:g} CPUs (with {reserve:g} kept for reading the "
                    f"data) would get {share:.2g} CPU each, below {MIN_WORKER_CPU}; use fewer "
                    "workers"
                )
            per_worker = dict(scaling.resources_per_worker or {})
            per_worker["CPU"] = round(share, 3)
            planned = dataclasses.replace(scaling, resources_per_worker=per_worker)
            bundle = {**bundle, "CPU": round(share, 3)}
            note = (
                f"resources: {held} worker(s) x 1 CPU + data reads need more than the cluster's "
                f"{cpus:g} CPUs; running each worker on {share:.3g} CPU and reads on "
                f"{read_cpus:g} CPU each ({reserve:g} CPU kept for reading)"
            )

    slots = shape.slots(bundle)
    if slots < n:
        raise ResourceError(
            f"{n} worker(s) of {_fmt(bundle)} each cannot all be placed: the cluster's nodes "
            f"hold {slots:g} at most, one worker's resources on one node ({shape.describe()}); "
            "use fewer workers or smaller resources_per_worker"
        )
    if shape.slots_up(bundle) < n:
        wait = _wait_note(n, bundle, shape)
        note = f"{note}; {wait}" if note else wait
    return ResourcePlan(planned, read_cpus, note)


def _check_one_fits(bundle: dict[str, float], shape: ClusterShape) -> None:
    """Refuse a worker bundle that no node up and no node type can ever hold."""
    if shape.slots_coming(bundle) > 0 or shape.hosts(bundle) or shape.types_unknown:
        return
    raise ResourceError(
        f"one worker needs {_fmt(bundle)} on a single node, but no node can hold it "
        f"({shape.describe()}); lower resources_per_worker to fit a node, or add a node "
        "type that large to the cluster config"
    )


def _wait_note(n: int, bundle: dict[str, float], shape: ClusterShape) -> str:
    """The one line saying that the run waits for the autoscaler, and for what."""
    up = shape.slots_up(bundle)
    if shape.types_unknown:
        target = "nodes of a type this process cannot see"
    else:
        hosts = " or ".join(f"{t.name} {_fmt(t.resources)}" for t in shape.hosts(bundle))
        target = hosts or "the nodes it is launching"
    return (
        f"resources: the nodes up hold {up} of {n} worker(s) of {_fmt(bundle)}; going "
        f"ahead, the run waits for the autoscaler to add {target}"
    )


def _fmt(bundle: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(bundle.items())) + "}"


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
        have = (
            f"the cluster's {self.cluster.cpus:g}"
            if math.isfinite(self.cluster.cpus)
            else "what the autoscaler can add"
        )
        return (
            f"{self.trials} trial(s), each holding {self.trial_cpus:.3g} CPU(s){gpus} of "
            f"{have}: {self.concurrent} at a time{queued}"
        )


def plan_trials(
    trial_cpus: float,
    trial_gpus: float,
    cluster: ClusterShape | ClusterResources,
    trials: int,
    max_concurrent: int | None = None,
) -> TrialPlan:
    """How many trials, each holding ``trial_cpus``/``trial_gpus`` while it trains (its
    workers and its data reads), run at once on ``cluster`` without waiting on each other
    forever: as many as fit what the cluster has and its autoscaler can add, at most
    ``trials`` and ``max_concurrent``. (Each trial's workers were planned per node by
    :func:`plan_resources` already.)"""
    if isinstance(cluster, ClusterShape):
        cluster = ClusterResources(cluster.total("CPU"), cluster.total("GPU"))
    if trial_cpus > cluster.cpus + 1e-9 or trial_gpus > cluster.gpus + 1e-9:
        raise ResourceError(
            f"one trial needs {trial_cpus:g} CPU(s) and {trial_gpus:g} GPU(s), but the cluster "
            f"has {cluster.cpus:g} and {cluster.gpus:g}; lower the trainer's workers or CPUs"
        )
    fit = _floor(cluster.cpus / trial_cpus, trials) if trial_cpus > 0 else trials
    if trial_gpus > 0:
        fit = min(fit, _floor(cluster.gpus / trial_gpus, trials))
    concurrent = max(1, min(fit, trials, max_concurrent or trials))
    return TrialPlan(trial_cpus, trial_gpus, concurrent, trials, cluster)


def _floor(ratio: float, cap: int) -> int:
    return cap if math.isinf(ratio) else math.floor(ratio + 1e-9)


def read_reserve(cpus: float) -> float:
    """CPUs kept free for Ray Data's read tasks: one on clusters of 4+ CPUs, else half."""
    return 1.0 if cpus >= 4 else 0.5
