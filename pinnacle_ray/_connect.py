"""``pinnacle_ray.connect``: a datastore wired to the rooms above it.

The datastore room sits below the registry and the jobs rooms and never imports them; this
module, one floor above all three, hands the store the two factories that build
``store.models`` and ``store.jobs``. Each is a module-level function that imports its room
only when called, so a store pickled into a Ray read task carries them without loading the
registry there.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .datastore import connect as open_datastore

if TYPE_CHECKING:
    from .datastore import Datastore, MongoDatastore, SqlDatastore
    from .jobs.catalog import JobCatalog
    from .registry.registry import ModelRegistry

__all__ = ["connect", "job_catalog", "model_registry"]


def connect(
    url: str | os.PathLike[str],
    artifact_root: str | os.PathLike[str] | None = None,
    *,
    sqlite_wal: bool | None = None,
) -> SqlDatastore[ModelRegistry, JobCatalog] | MongoDatastore[ModelRegistry, JobCatalog]:
    """Connect to the datastore at ``url``: any SQLAlchemy URL, a path to an SQLite file, or
    a ``mongodb://`` / ``mongodb+srv://`` URL; ``store.models`` is its model registry and
    ``store.jobs`` its Ray jobs.

    The connection is checked here, so a wrong host, port, password or database fails now
    with an error naming the URL (password masked). ``artifact_root`` is where registered
    models' files go (a folder or a ``pyarrow.fs`` URI such as ``s3://bucket/models``);
    ``sqlite_wal`` sets an existing SQLite file's journal mode. Both are described in full
    at :func:`pinnacle_ray.datastore.connect`.

    Example::

        store = pr.connect("sqlite:///shop.db")
        store.models.list()
    """
    return open_datastore(
        url, artifact_root, sqlite_wal=sqlite_wal, models=model_registry, jobs=job_catalog
    )


def model_registry(store: Datastore) -> ModelRegistry:
    """``store.models``: the model registry kept in ``store``."""
    from .registry.registry import ModelRegistry

    return ModelRegistry(store)


def job_catalog(store: Datastore) -> JobCatalog:
    """``store.jobs``: the Ray jobs recorded in ``store``."""
    from .jobs.catalog import JobCatalog

    return JobCatalog(store)
