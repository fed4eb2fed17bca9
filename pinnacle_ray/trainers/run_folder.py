"""A fit's Ray Train run folder: bounded while the run goes, removed once registered.

While the run goes, :class:`KeepHandled` (a Ray Train callback in the run's controller)
deletes each checkpoint as soon as no handle (``latest``, ``best``, the last
``keep_checkpoints`` ``epoch_<n>``) names it any more, by the same rule registration uses
(:mod:`.retention`): the folder holds at most what the registry will keep, plus the
checkpoint being written. Ray's own bookkeeping is told nothing: its run result still
lists the deleted checkpoints (``result.ray_result.best_checkpoints``), and the trainers
register from :meth:`Retention.surviving` of them.

Ray Train never deletes a run's folder, and every fit gets a new one (``default_run_config``
names runs uniquely), so disk or database use would grow with every fit. Registration
copies each handle's checkpoint into the registry, after which the run folder holds
nothing the registry needs: it is removed, and ``TrainResult.checkpoint`` points at the
registered copy of the run's latest checkpoint instead. A run whose ``RunConfig`` you gave
(your own name or storage path: Ray may resume it by name) is left as it is, as are runs
that were not registered.
"""

from __future__ import annotations

import logging
from typing import Any

import ray.train
from ray.train.v2.api.callback import UserCallback

from .retention import Reported, Retention

__all__ = ["KeepHandled", "registered_latest", "release_run_folder", "remove_folder"]

logger = logging.getLogger("pinnacle_ray.trainers")


def release_run_folder(
    store: Any, name: str, version: int, ray_result: Any
) -> ray.train.Checkpoint:
    """Remove the run folder of ``ray_result`` (registered as ``name`` ``version`` in
    ``store``); the registered copy of its latest checkpoint, as a ``ray.train.Checkpoint``
    on the artifact root's filesystem."""
    checkpoint = registered_latest(store, name, version)
    remove_folder(
        getattr(ray_result, "filesystem", None),
        getattr(ray_result, "path", None),
        f"registered as {name} version {version}",
    )
    return checkpoint


def registered_latest(store: Any, name: str, version: int) -> ray.train.Checkpoint:
    """The registered copy of ``name`` ``version``'s latest checkpoint, as a
    ``ray.train.Checkpoint`` on the artifact root's filesystem."""
    files = store.models.files(name, version, handle="latest")
    uri = files.weights[0] if files.weights is not None else files.model[0]
    filesystem, base = files.root.open()
    return ray.train.Checkpoint(
        f"{base.rstrip('/')}/{files.root.relative(uri)}", filesystem=filesystem
    )


def remove_folder(filesystem: Any, path: str | None, why: str) -> None:
    """Remove ``path`` on ``filesystem`` (a ``pyarrow.fs.FileSystem``) and all it holds,
    once nothing needs it (``why`` says what made it so, for the log). A folder already
    gone is fine; one that cannot be removed is a warning, never a failure: what needed it
    has been done."""
    if not path or filesystem is None:
        return
    try:
        filesystem.delete_dir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not remove the folder %s: %s", path, exc)
    else:
        logger.debug("removed %s (%s)", path, why)


class KeepHandled(UserCallback):
    """Runs in Ray Train's controller: after each reported checkpoint, deletes the run's
    checkpoints that ``retention`` says no handle names any more.

    Ray's checkpoint manager has registered the new checkpoint (and written its snapshot)
    before user callbacks run, and the latest checkpoint (the one a restarted worker
    continues from) is always kept, so nothing Ray reads is deleted.
    """

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self._kept: list[Reported] = []

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
    ) -> None:
        if checkpoint is None or not metrics:
            return
        self._kept, dropped = self.retention.step(self._kept, (checkpoint, dict(metrics[0])))
        for old, _ in dropped:
            remove_folder(old.filesystem, old.path, "a checkpoint no handle names any more")
