"""Read the cluster's shape: each node that is up, and the node types its autoscaler can add.

Resource planning needs more than the sum of what is up now. A worker's bundle must fit on
one node, and on an autoscaling cluster (a head with no CPUs, worker groups at
``min_workers: 0``) the node that will hold it may not exist yet. :func:`read_shape` asks
Ray for both; :mod:`.resources` plans on the result without touching Ray.

Where the node types come from, first found wins:

1. the cluster config the autoscaler reports to the GCS (``node_group_configs``, what Ray
   Data's autoscaler reads too);
2. the autoscaling config YAML the head's autoscaler monitor runs with (``ray up``'s
   ``~/ray_bootstrap_config.yaml``, ``ray start --head --autoscaling-config=...``), read by a
   zero-CPU task on the head node, so a driver on another machine sees it too.

When an autoscaler runs but neither is readable (e.g. KubeRay's autoscaler sidecar), the
shape says so (``autoscaling=True`` with no node types) and the planner lets a request that
the nodes up cannot hold go ahead, saying it waits for the autoscaler.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ClusterShape", "NodeType", "node_types_from_config", "read_shape"]

logger = logging.getLogger("pinnacle_ray.trainers")

# A node type that may grow without a limit (Ray's ``max_count: -1``).
UNLIMITED: int | None = None
# How long to wait for the head-node task that reads the autoscaling config.
_HEAD_READ_TIMEOUT_S = 8.0
_BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


@dataclass(frozen=True)
class NodeType:
    """A kind of node the autoscaler can start: its resources per node, and how many more
    of it it may still add (``None``: no limit)."""

    name: str
    resources: Mapping[str, float]
    can_add: int | None = UNLIMITED

    def __str__(self) -> str:
        more = "no limit" if self.can_add is None else f"up to {self.can_add} more"
        return f"{self.name} {_fmt(self.resources)} ({more})"


@dataclass(frozen=True)
class ClusterShape:
    """The resources of each node up now, and the node types the autoscaler can add.

    ``autoscaling`` is True when an autoscaler runs; with no ``node_types`` known it may
    add nodes of a shape we cannot see. ``max_new_nodes`` is the cluster-wide cap on the
    worker nodes it may still add (``max_workers`` in the cluster YAML), ``None`` if none.
    ``pending`` counts, per node type, the nodes being launched: not up yet, and no longer
    in their type's ``can_add``.

    Example::

        shape = ClusterShape(nodes=({"CPU": 0},), node_types=(NodeType("cpu", {"CPU": 2}, 4),),
                             autoscaling=True)
    """

    nodes: tuple[Mapping[str, float], ...]
    node_types: tuple[NodeType, ...] = ()
    autoscaling: bool = False
    max_new_nodes: int | None = None
    pending: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def one_node(cls, cpus: float, gpus: float = 0.0) -> ClusterShape:
        """A single node with ``cpus`` CPUs and ``gpus`` GPUs and no autoscaler."""
        resources = {"CPU": float(cpus)}
        if gpus:
            resources["GPU"] = float(gpus)
        return cls(nodes=(resources,))

    @property
    def types_unknown(self) -> bool:
        """An autoscaler runs but its node types could not be read."""
        return self.autoscaling and not self.node_types

    def total(self, resource: str) -> float:
        """How much of ``resource`` the cluster has now plus what the autoscaler can add
        (``inf`` when it can add without a limit, or its node types are unknown)."""
        if self.types_unknown:
            return math.inf
        up = sum(float(n.get(resource, 0.0)) for n in self._coming())
        added = [t for t in self.node_types if float(t.resources.get(resource, 0.0)) > 0]
        if any(t.can_add is None for t in added) and self.max_new_nodes is None:
            return math.inf
        per_node = sorted(
            (float(t.resources[resource]) for t in added for _ in _range(t)), reverse=True
        )
        if self.max_new_nodes is not None:
            per_node = per_node[: self.max_new_nodes]
        return up + sum(per_node)

    def slots_up(self, bundle: Mapping[str, float]) -> int:
        """How many workers of ``bundle`` the nodes up now hold, one bundle per slot."""
        return sum(_fits(node, bundle) for node in self.nodes)

    def slots_coming(self, bundle: Mapping[str, float]) -> int:
        """How many workers of ``bundle`` the nodes up and those being launched hold."""
        return sum(_fits(node, bundle) for node in self._coming())

    def _coming(self) -> list[Mapping[str, float]]:
        """The nodes up, and those being launched (their type's resources)."""
        types = {t.name: t.resources for t in self.node_types}
        launching = [
            types[name] for name, n in self.pending.items() if name in types for _ in range(n)
        ]
        return [*self.nodes, *launching]

    def slots(self, bundle: Mapping[str, float]) -> float:
        """How many workers of ``bundle`` fit on the nodes up plus the nodes the autoscaler
        can add (``inf`` when it can add fitting nodes without a limit)."""
        if self.types_unknown:
            return math.inf
        up = self.slots_coming(bundle)
        per_node = [_fits(t.resources, bundle) for t in self.node_types]
        fitting = [(k, t) for k, t in zip(per_node, self.node_types, strict=True) if k > 0]
        if any(t.can_add is None for _, t in fitting) and self.max_new_nodes is None:
            return math.inf
        biggest_first = sorted((k for k, t in fitting for _ in _range(t)), reverse=True)
        if self.max_new_nodes is not None:
            biggest_first = biggest_first[: self.max_new_nodes]
        return up + sum(biggest_first)

    def hosts(self, bundle: Mapping[str, float]) -> list[NodeType]:
        """The node types the autoscaler can still add that hold at least one ``bundle``."""
        if self.max_new_nodes == 0:
            return []
        return [t for t in self.node_types if _fits(t.resources, bundle) and (t.can_add or 0) != 0]

    def describe(self) -> str:
        """One line: the nodes up and the node types the autoscaler can add."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            key = _fmt({k: v for k, v in node.items() if k in ("CPU", "GPU") or _custom(k)})
            counts[key] = counts.get(key, 0) + 1
        up = ", ".join(f"{n} x {key}" for key, n in counts.items()) or "none"
        text = f"nodes up: {up}"
        launching = ", ".join(f"{n} x {name}" for name, n in self.pending.items() if n)
        if launching:
            text += f"; being launched: {launching}"
        if self.node_types:
            text += "; node types the autoscaler can add: " + ", ".join(map(str, self.node_types))
        elif self.autoscaling:
            text += "; an autoscaler runs but its node types could not be read"
        else:
            text += "; no autoscaler"
        if self.max_new_nodes is not None and self.node_types:
            text += f" (at most {self.max_new_nodes} more node(s) in all)"
        return text


def _range(t: NodeType) -> range:
    return range(t.can_add or 0)


def _fits(node: Mapping[str, float], bundle: Mapping[str, float]) -> int:
    """How many copies of ``bundle`` one node with ``node`` resources holds."""
    counts = [
        math.floor(float(node.get(r, 0.0)) / amount + 1e-9)
        for r, amount in bundle.items()
        if amount > 0
    ]
    return max(0, min(counts)) if counts else 1_000_000


def _custom(key: str) -> bool:
    """A user-declared resource, not one Ray adds to every node."""
    return not (
        key in ("memory", "object_store_memory")
        or key.startswith("node:")
        or key.startswith("accelerator_type:")
    )


def _fmt(resources: Mapping[str, float]) -> str:
    shown = {k: v for k, v in resources.items() if _custom(k)}
    return "{" + ", ".join(f"{k}: {float(v):g}" for k, v in sorted(shown.items())) + "}"


# -- node types from a cluster config (pure) -----------------------------------------------
def node_types_from_config(
    config: Mapping[str, Any], running: Mapping[str, int] | None = None
) -> tuple[tuple[NodeType, ...], int | None]:
    """The worker node types of a Ray cluster launcher config (``available_node_types``,
    ``max_workers``) with how many more of each may start, given the nodes of each type
    already ``running`` (up or being launched); and the cluster-wide cap on new nodes.

    The head type is left out: the autoscaler never adds a head."""
    running = dict(running or {})
    head = config.get("head_node_type")
    types = []
    for name, spec in (config.get("available_node_types") or {}).items():
        if name == head:
            continue
        resources = {k: float(v) for k, v in (spec.get("resources") or {}).items()}
        limit = spec.get("max_workers", config.get("max_workers"))
        can_add = (
            None if limit is None or int(limit) < 0 else max(0, int(limit) - running.get(name, 0))
        )
        types.append(NodeType(name, resources, can_add))
    cap = config.get("max_workers")
    workers = sum(n for name, n in running.items() if name != head)
    max_new = None if cap is None or int(cap) < 0 else max(0, int(cap) - workers)
    return tuple(types), max_new


# -- reading the live cluster --------------------------------------------------------------
def read_shape() -> ClusterShape:
    """The shape of the connected Ray cluster (starting Ray if needed): each node up, and
    the node types its autoscaler can still add."""
    import ray

    from .._internal.runtime import ensure_ray

    ensure_ray()
    nodes = tuple(
        {k: float(v) for k, v in n["Resources"].items()} for n in ray.nodes() if n["Alive"]
    )
    status = _autoscaler_status()
    if status is None:
        return ClusterShape(nodes=nodes)
    running, pending = status["running"], status["pending"]
    config = _gcs_cluster_config(running)
    if config is None:
        config = _head_config(status.get("monitor_pid"), running)
    if config is None:
        logger.info("an autoscaler runs, but its node types could not be read")
        return ClusterShape(nodes=nodes, autoscaling=True, pending=pending)
    types, max_new = config
    return ClusterShape(
        nodes=nodes, node_types=types, autoscaling=True, max_new_nodes=max_new, pending=pending
    )


def _autoscaler_status() -> dict[str, Any] | None:
    """Nodes per type that are up or being launched, and those being launched, from the
    autoscaler's own report; None when no autoscaler runs."""
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
    except Exception:  # an old or partial GCS: plan on what is up
        return None
    if raw:  # autoscaler v1 writes its report here
        data = json.loads(raw)
        report = data.get("autoscaler_report")
        if not report:
            return None  # a monitor without an autoscaling config (a plain `ray start`)
        mapping = report.get("node_type_mapping") or {}
        if mapping and all(name == f"node_{node}" for node, name in mapping.items()):
            # Ray's read-only provider (`ray.init`, `ray start` without an autoscaling
            # config, seen a few seconds after start): each node is its own "type", and
            # nothing can be added.
            return None
        running: dict[str, int] = {}
        for counts in (report.get("active_nodes"), report.get("idle_nodes")):
            for name, n in (counts or {}).items():
                running[name] = running.get(name, 0) + int(n)
        pending: dict[str, int] = {}
        for name, n in (report.get("pending_launches") or {}).items():
            pending[name] = pending.get(name, 0) + int(n)
        for _ip, name, *_ in report.get("pending_nodes") or []:
            pending[name] = pending.get(name, 0) + 1
        for name, n in pending.items():
            running[name] = running.get(name, 0) + n
        return {"running": running, "pending": pending, "monitor_pid": data.get("monitor_pid")}
    return _autoscaler_v2_status()


def _autoscaler_v2_status() -> dict[str, Any] | None:
    try:
        from ray.autoscaler.v2.sdk import get_cluster_status
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        if not is_autoscaler_v2():
            return None
        import ray

        status = get_cluster_status(ray.get_runtime_context().gcs_address)
    except Exception:
        return None
    running: dict[str, int] = {}
    pending: dict[str, int] = {}
    for node in [*status.active_nodes, *status.idle_nodes]:
        running[node.ray_node_type_name] = running.get(node.ray_node_type_name, 0) + 1
    for launch in status.pending_launches:
        pending[launch.ray_node_type_name] = (
            pending.get(launch.ray_node_type_name, 0) + launch.count
        )
    for node in status.pending_nodes:
        pending[node.ray_node_type_name] = pending.get(node.ray_node_type_name, 0) + 1
    for name, n in pending.items():
        running[name] = running.get(name, 0) + n
    return {"running": running, "pending": pending, "monitor_pid": None}


def _gcs_cluster_config(
    running: Mapping[str, int],
) -> tuple[tuple[NodeType, ...], int | None] | None:
    """Node types from the cluster config the autoscaler reported to the GCS, if any."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:
        return None
    if config is None or not config.node_group_configs:
        return None
    types = []
    for group in config.node_group_configs:
        resources = {k: float(v) for k, v in group.resources.items()}
        if not resources:
            continue
        can_add = (
            None if group.max_count < 0 else max(0, group.max_count - running.get(group.name, 0))
        )
        types.append(NodeType(group.name, resources, can_add))
    return (tuple(types), None) if types else None


def _head_config(
    monitor_pid: int | None, running: Mapping[str, int]
) -> tuple[tuple[NodeType, ...], int | None] | None:
    """Node types from the autoscaling YAML the head's monitor reads, via a task there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next(
        (
            n["NodeID"]
            for n in ray.nodes()
            if n["Alive"] and "node:__internal_head__" in n["Resources"]
        ),
        None,
    )
    if head is None:
        return None
    # The monitor reads its YAML once; `ray up` with a changed config restarts it (a new
    # pid), so one read per monitor process is enough (fits, sweeps and the storage
    # decision each read the shape).
    key = (head, monitor_pid)
    if monitor_pid is not None and key in _HEAD_CONFIGS:
        config = _HEAD_CONFIGS[key]
    else:
        task = ray.remote(num_cpus=0)(_read_autoscaling_config).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)
        )
        try:
            config = ray.get(task.remote(monitor_pid), timeout=_HEAD_READ_TIMEOUT_S)
        except Exception as exc:  # unreadable: plan as "types unknown", never fail the fit
            logger.info("could not read the autoscaling config on the head node: %s", exc)
            return None
        if monitor_pid is not None:
            _HEAD_CONFIGS[key] = config
    return node_types_from_config(config, running) if config else None


# (head node id, monitor pid) -> the autoscaling config that monitor runs with.
_HEAD_CONFIGS: dict[tuple[str, Any], dict[str, Any] | None] = {}


def _read_autoscaling_config(monitor_pid: int | None) -> dict[str, Any] | None:
    """(Runs on the head node.) The autoscaling config the monitor process was started
    with, else ``ray up``'s bootstrap config; None when neither is there."""
    import yaml

    candidates = []
    if monitor_pid:
        try:
            raw = Path(f"/proc/{int(monitor_pid)}/cmdline").read_bytes()
            args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        except OSError:
            args = []
        for i, arg in enumerate(args):
            if arg.startswith("--autoscaling-config="):
                candidates.append(arg.split("=", 1)[1])
            elif arg == "--autoscaling-config" and i + 1 < len(args):
                candidates.append(args[i + 1])
    candidates.append(_BOOTSTRAP_CONFIG)
    for candidate in candidates:
        path = Path(os.path.expanduser(shlex.split(candidate)[0] if candidate else ""))
        if path.is_file():
            loaded = yaml.safe_load(path.read_text())
            if isinstance(loaded, dict) and loaded.get("available_node_types"):
                return loaded
    return None
