"""Where a run's checkpoints live, so that every node of the cluster reaches them.

One setting drives it: the datastore's ``store.models.run_storage()`` (the registry's
``RunStorage``) says what to hand Ray Train's ``RunConfig(storage_path=...,
storage_filesystem=...)`` so that checkpoints written on any node are readable from every
node: the in-database store of a server datastore, or an ``s3://``/``gs://``/``file://``
artifact root. A SQLite store or a plain local-folder artifact root has no such storage
(``shared=False``): fine on one machine, refused on a cluster whose workers run elsewhere.

The decision is a pure function (:func:`choose_run_storage`) over how the cluster is spread
(:class:`NodeSpread`: Ray's live node list, and whether its autoscaler can add nodes); the
trainers, sweeps, predictions and jobs act on it. On a single node that cannot grow, Ray's
own local storage is kept even when a shared one exists: nothing moves between machines,
the registered checkpoints go into the database anyway, and a local disk is the fastest
place for Ray Train's intermediate checkpoints. ``PINNACLE_RAY_RUN_STORAGE=shared`` uses the
shared storage on one node too (e.g. to check a cluster set-up on a laptop).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from .._internal.constants import RUN_STORAGE_ENV, run_storage_mode
from ..errors import ConfigError, StorageNotShared

__all__ = [
    "RUN_STORAGE_ENV",
    "NodeSpread",
    "RegisteredCheckpoint",
    "ShippedFolder",
    "StorageChoice",
    "can_grow",
    "check_reachable",
    "choose_run_storage",
    "node_spread",
    "other_worker_nodes",
    "storage_for_trials",
    "user_storage_path",
    "with_run_storage",
]

logger = logging.getLogger("pinnacle_ray.trainers")

# "auto" (default): shared storage when the cluster has, or can get, more than one node;
# "shared": the datastore's shared storage even on one node.
_MODES = ("auto", "shared")

_FIX = (
    'connect to a server database (pr.connect("postgresql://...")), whose registry stores '
    "checkpoints in the database, or give the store a shared artifact root: pr.connect(url, "
    'artifact_root="s3://bucket/prefix") or artifact_root="file:///shared/folder" (a folder '
    "every node mounts)"
)


@dataclass(frozen=True)
class NodeSpread:
    """What the storage decision needs to know of the cluster: the alive nodes other than
    the driver's that can run tasks or workers, and whether an autoscaler can add nodes."""

    other_nodes: tuple[str, ...] = ()
    can_grow: bool = False

    @property
    def multi_node(self) -> bool:
        """Whether work can land on a node that does not share the driver's disk now."""
        return bool(self.other_nodes)


@dataclass(frozen=True)
class StorageChoice:
    """What goes into ``RunConfig``: ``(None, None)`` keeps Ray's default local storage."""

    storage_path: str | None = None
    storage_filesystem: Any = None  # pyarrow.fs.FileSystem

    @property
    def default(self) -> bool:
        return self.storage_path is None and self.storage_filesystem is None


def other_worker_nodes(nodes: Iterable[Mapping[str, Any]], driver_node_id: str) -> list[str]:
    """The ids of the alive nodes in ``nodes`` (``ray.nodes()`` entries) other than the
    driver's that have CPUs or GPUs: where Ray can run a task or a Train worker that does
    not see the driver's disk. A head started with ``--num-cpus 0`` plus one worker node
    therefore counts as multi-node: the workers all run on the other machine."""
    others = []
    for node in nodes:
        if not node.get("Alive", node.get("alive", False)):
            continue
        node_id = node.get("NodeID") or node.get("node_id")
        if node_id == driver_node_id:
            continue
        resources = node.get("Resources") or node.get("resources_total") or {}
        if float(resources.get("CPU", 0) or 0) > 0 or float(resources.get("GPU", 0) or 0) > 0:
            others.append(str(node_id))
    return others


def can_grow(shape: Any) -> bool:
    """Whether the autoscaler of ``shape`` (``trainers.cluster_shape.ClusterShape``) can
    still add a node with CPUs or GPUs (one of unknown type counts)."""
    if not shape.autoscaling or shape.max_new_nodes == 0:
        return False
    if shape.types_unknown:
        return True
    return any(
        (t.can_add is None or t.can_add > 0)
        and (float(t.resources.get("CPU", 0)) > 0 or float(t.resources.get("GPU", 0)) > 0)
        for t in shape.node_types
    )


def node_spread() -> NodeSpread:
    """The connected Ray cluster's spread, from its live node list and its autoscaler
    (starts Ray if needed)."""
    from .cluster_shape import read_shape

    shape = read_shape()  # starts Ray when needed
    driver = ray.get_runtime_context().get_node_id()
    return NodeSpread(tuple(other_worker_nodes(ray.nodes(), driver)), can_grow(shape))


def choose_run_storage(
    storage: Any,
    spread: NodeSpread,
    *,
    user_path: str | None = None,
    mode: str = "auto",
    what: str = "this run",
) -> StorageChoice:
    """Where Ray Train keeps ``what``'s checkpoints, or ``StorageNotShared`` when they
    could not be reached from every node.

    ``storage`` is the datastore's ``RunStorage`` (``None`` for a run on a plain Dataset,
    which has no datastore); ``user_path`` a ``storage_path`` the user set in their
    ``run_config`` (it wins, but a plain local path is refused on several nodes: write
    ``file:///mount/point`` for a folder every node mounts). ``mode`` is
    :data:`RUN_STORAGE_ENV`'s value.
    """
    if mode not in _MODES:
        raise ConfigError(f"{RUN_STORAGE_ENV}={mode!r} is not one of {list(_MODES)}")
    if user_path is not None:
        if spread.multi_node and "://" not in str(user_path):
            raise StorageNotShared(
                f"{what}: run_config.storage_path={str(user_path)!r} is a local folder, but "
                f"the Ray cluster has {len(spread.other_nodes)} other node(s) where workers "
                "run and cannot read it. Use a URI every node reaches: storage_path="
                '"s3://bucket/prefix", "gs://...", or "file:///mount/point" for a folder '
                "every node mounts (or leave storage_path out to use the datastore's)"
            )
        return StorageChoice()  # the user's run_config already says it
    if storage is None:
        if spread.multi_node:
            logger.warning(
                "%s: train= is a plain Dataset, so there is no datastore to keep checkpoints "
                "in, and the cluster has other nodes; set run_config=RunConfig(storage_path="
                '"s3://...") if the run reports checkpoints',
                what,
            )
        return StorageChoice()
    if not storage.shared:
        if spread.multi_node:
            raise StorageNotShared(
                f"{what}: this datastore keeps checkpoints and model files on this machine's "
                f"disk, but the Ray cluster has {len(spread.other_nodes)} other node(s) where "
                f"work runs and cannot read them. To train on a cluster, {_FIX}"
            )
        if spread.can_grow:
            logger.warning(
                "%s: the autoscaler may add nodes, but this datastore keeps checkpoints on "
                "this machine's disk; runs will be refused once other nodes are up. To train "
                "on a cluster, %s",
                what,
                _FIX,
            )
        return StorageChoice()
    if spread.multi_node or spread.can_grow or mode == "shared":
        why = (
            f"the cluster has {len(spread.other_nodes)} other node(s)"
            if spread.multi_node
            else "the autoscaler can add nodes"
            if spread.can_grow
            else f"{RUN_STORAGE_ENV}=shared"
        )
        logger.info("%s: checkpoints in the datastore's shared storage (%s)", what, why)
        return StorageChoice(storage.storage_path, storage.storage_filesystem)
    return StorageChoice()


def _mode() -> str:
    return run_storage_mode()


def _run_storage(store: Any) -> Any:
    return store.models.run_storage() if store is not None else None


# Set by pr.sweep inside each trial: the storage the sweep chose (and checked) for the
# whole sweep, so every trial's Ray Train run keeps its checkpoints where Tune keeps its own.
_TRIAL_STORAGE: contextvars.ContextVar[StorageChoice | None] = contextvars.ContextVar(
    "pinnacle_trial_storage", default=None
)


@contextlib.contextmanager
def storage_for_trials(choice: StorageChoice) -> Iterator[None]:
    """Inside a sweep's trial: every run started in this block uses ``choice``."""
    token = _TRIAL_STORAGE.set(choice)
    try:
        yield
    finally:
        _TRIAL_STORAGE.reset(token)


def decide(store: Any, run_config: Any = None, *, what: str = "this run") -> StorageChoice:
    """The storage for a run of ``store``'s data with ``run_config`` (see
    :func:`choose_run_storage`); inside a sweep's trial, the sweep's choice. Refuses before
    anything starts, so call it first."""
    user_path = user_storage_path(run_config)
    trial = _TRIAL_STORAGE.get()
    if trial is not None and user_path is None:
        return trial
    return choose_run_storage(
        _run_storage(store), node_spread(), user_path=user_path, mode=_mode(), what=what
    )


def with_run_storage(run_config: Any, choice: StorageChoice) -> Any:
    """``run_config`` (a ``ray.train.RunConfig`` or ``ray.tune.RunConfig``) storing its
    checkpoints where ``choice`` says; unchanged when the choice keeps Ray's default."""
    if choice.default:
        return run_config
    return dataclasses.replace(
        run_config,
        storage_path=choice.storage_path,
        storage_filesystem=choice.storage_filesystem,
    )


def check_reachable(store: Any, *, what: str, storage_path: str | None = None) -> None:
    """``StorageNotShared`` when ``store``'s model files and checkpoints (or a run's own
    ``storage_path``) would stay on this machine while the cluster runs work on other
    nodes: ``pr.predict`` and jobs call it before they start anything."""
    choose_run_storage(
        _run_storage(store), node_spread(), user_path=storage_path, mode=_mode(), what=what
    )


def user_storage_path(run_config: Any) -> str | None:
    """The storage a user set in ``run_config``: its ``storage_path``, as a URI when it
    lives on a filesystem of theirs that is not local (Ray fills in its default
    ``~/ray_results`` when none was given, which is not the user's choice)."""
    if run_config is None:
        return None
    path = getattr(run_config, "storage_path", None)
    if path is None:
        return None
    filesystem = getattr(run_config, "storage_filesystem", None)
    if filesystem is not None:
        import pyarrow.fs as pafs

        if not isinstance(filesystem, pafs.LocalFileSystem):
            return f"{filesystem.type_name}://{str(path).lstrip('/')}"
        return str(path)
    from ray.train.constants import DEFAULT_STORAGE_PATH

    if Path(str(path)).expanduser() == Path(DEFAULT_STORAGE_PATH).expanduser():
        return None
    return str(path)


@dataclass(frozen=True)
class RegisteredCheckpoint:
    """A registered checkpoint a run continues from (``fit(resume_from=...)``), as Ray Train
    workers on any node can open it: the driver's verified local copy when the worker runs
    on the driver's node, else a checksum-verified copy from the artifact root.

    ``files`` is the registry's ``ModelFiles`` (picklable, no database connection needed).
    """

    files: Any
    local_dir: str
    node_id: str

    @classmethod
    def of(
        cls,
        store: Any,
        name: str,
        version: int,
        handle: str | None,
        local_dir: str | None = None,
    ) -> RegisteredCheckpoint:
        """The checkpoint ``handle`` of ``name`` ``version``; its verified local copy is
        ``local_dir`` when the caller made it already (``store.models.checkpoint_dir``),
        else made now, so a damaged artifact is refused before any worker starts."""
        files = store.models.files(name, version, handle)
        if local_dir is None:
            local_dir = store.models.checkpoint_dir(name, version=version, handle=handle)
        return cls(files, local_dir, ray.get_runtime_context().get_node_id())

    def to_checkpoint(self) -> ray.train.Checkpoint:
        """A ``ray.train.Checkpoint`` over a local folder on this node."""
        import ray.train

        here = ray.get_runtime_context().get_node_id()
        if here == self.node_id and Path(self.local_dir).is_dir():
            return ray.train.Checkpoint.from_directory(self.local_dir)
        uri, digest = self.files.weights or self.files.model
        return ray.train.Checkpoint.from_directory(self.files.root.local_copy(uri, digest))


# Copies of shipped folders made in this process, by the driver's path.
_SHIPPED: dict[str, str] = {}


@dataclass(frozen=True)
class ShippedFolder:
    """A folder on the driver's disk (a pretrained model) that Ray workers read: in place on
    the driver's node, else from a copy this worker's process makes from Ray's object store
    (removed when the process exits). Only built when the cluster has other nodes.
    """

    path: str
    node_id: str
    files: Any  # ray.ObjectRef to {relative path: bytes}

    @classmethod
    def of(cls, path: str) -> ShippedFolder:
        """Put every file under ``path`` into Ray's object store (links followed, as in a
        Hugging Face cache snapshot)."""
        root = Path(path)
        files = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
        return cls(str(root), ray.get_runtime_context().get_node_id(), ray.put(files))

    def local_path(self) -> str:
        """The folder on this node: the driver's own when it is here, else a local copy."""
        if ray.get_runtime_context().get_node_id() == self.node_id and Path(self.path).is_dir():
            return self.path
        if self.path in _SHIPPED and Path(_SHIPPED[self.path]).is_dir():
            return _SHIPPED[self.path]
        target = Path(tempfile.mkdtemp(prefix="pinnacle-shipped-"))
        atexit.register(shutil.rmtree, target, True)
        for rel, data in ray.get(self.files).items():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        _SHIPPED[self.path] = str(target)
        return str(target)
