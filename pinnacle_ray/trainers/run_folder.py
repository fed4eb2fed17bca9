"""A fit's Ray Train run folder, removed once the registry holds copies of its checkpoints.

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

__all__ = ["release_run_folder"]

logger = logging.getLogger("pinnacle_ray.trainers")


def release_run_folder(
    store: Any, name: str, version: int, ray_result: Any
) -> ray.train.Checkpoint:
    """Remove the run folder of ``ray_result`` (registered as ``name`` ``version`` in
    ``store``); the registered copy of its latest checkpoint, as a ``ray.train.Checkpoint``
    on the artifact root's filesystem."""
    files = store.models.files(name, version, handle="latest")
    uri = files.weights[0] if files.weights is not None else files.model[0]
    filesystem, base = files.root.open()
    checkpoint = ray.train.Checkpoint(
        f"{base.rstrip('/')}/{files.root.relative(uri)}", filesystem=filesystem
    )
    path = getattr(ray_result, "path", None)
    run_fs = getattr(ray_result, "filesystem", None)
    if path and run_fs is not None:
        try:
            run_fs.delete_dir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # the version is registered: a leftover folder is no failure
            logger.warning("could not remove the run folder %s: %s", path, exc)
        else:
            logger.debug("removed run folder %s (registered as %s version %d)", path, name, version)
    return checkpoint
