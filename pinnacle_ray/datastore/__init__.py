"""Datastores: where the data lives. ``connect(url)`` picks the backend from the URL.

Users open one with ``pinnacle_ray.connect``, which also hands it its model registry and
job catalog (``store.models``, ``store.jobs``); this room never imports those rooms."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._internal.extras import needs_extra
from .._internal.lazy import lazy_attributes
from ..errors import ConfigError
from .base import Datastore, ModelVersions, store_of
from .shards import KeyRange, KeyStats, ShardPlan, plan_ranges
from .wiring import JobsFactory, ModelsFactory

if TYPE_CHECKING:
    from .mongo.query import MongoQuery
    from .mongo.store import MongoDatastore
    from .sql.query import SqlQuery
    from .sql.store import SqlDatastore

# SQLAlchemy and the drivers (the sql modules), pymongo (the mongo ones): loaded on first
# use, so a process that only reads registry records or runs a training loop (a Ray Train
# worker imports the registry's torch flavor) does not pay for them.
_LAZY = {
    "MongoDatastore": "mongo.store",
    "MongoQuery": "mongo.query",
    "SqlDatastore": "sql.store",
    "SqlQuery": "sql.query",
}

__all__ = [
    "Datastore",
    "JobsFactory",
    "KeyRange",
    "KeyStats",
    "ModelVersions",
    "ModelsFactory",
    "MongoDatastore",
    "MongoQuery",
    "ShardPlan",
    "SqlDatastore",
    "SqlQuery",
    "connect",
    "plan_ranges",
    "store_of",
]


def connect(
    url: str | os.PathLike[str],
    artifact_root: str | os.PathLike[str] | None = None,
    *,
    sqlite_wal: bool | None = None,
    models: ModelsFactory | None = None,
    jobs: JobsFactory | None = None,
) -> SqlDatastore | MongoDatastore:
    """Connect to the datastore at ``url``: any SQLAlchemy URL, a path to an SQLite file, or
    a ``mongodb://`` / ``mongodb+srv://`` URL (a :class:`MongoDatastore`).

    The connection is checked here, so a wrong host, port, password or database fails now
    (within a few seconds) with an error naming the URL (password masked).
    ``artifact_root`` is where registered models' files go: a folder, or a ``pyarrow.fs``
    URI such as ``s3://bucket/models`` that every node of a cluster can read. Default: beside
    an SQLite file (``shop.db`` -> ``shop.artifacts/``), else inside the database itself
    (``pinnacle-db://artifacts``: chunked blob tables in SQL, GridFS in MongoDB); the
    ``PINNACLE_RAY_ARTIFACT_ROOT`` environment variable overrides the default.

    An SQLite file this call creates is put in WAL mode (Ray's read tasks then read while
    another connection writes); an existing file keeps its journal mode, since WAL would
    stay in it for good, unless ``sqlite_wal=True`` (``False``: never switch).

    ``models`` and ``jobs`` build ``store.models`` and ``store.jobs`` on first use;
    ``pinnacle_ray.connect`` passes the registry's and the jobs room's. A store opened
    without them raises ``ConfigError`` on those attributes.
    """
    text = os.fspath(url) if not isinstance(url, str) else url
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("mongodb", "mongodb+srv"):
        with needs_extra("mongo", "a mongodb:// datastore"):
            from .mongo.store import MongoDatastore  # pymongo loads only for Mongo URLs

        if sqlite_wal is not None:
            raise ConfigError(
                f"sqlite_wal={sqlite_wal!r} applies to SQLite files only; leave it out"
            )

        return MongoDatastore(text, artifact_root, models=models, jobs=jobs)
    from .sql.store import SqlDatastore
    from .url import parse_sql_url

    return SqlDatastore(
        parse_sql_url(text), artifact_root, sqlite_wal=sqlite_wal, models=models, jobs=jobs
    )


__getattr__, __dir__ = lazy_attributes(
    globals(), _LAZY, {"MongoDatastore": "mongo", "MongoQuery": "mongo"}
)
