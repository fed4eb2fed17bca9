"""Datastores: where the data lives. ``connect(url)`` picks the backend from the URL."""

from __future__ import annotations

import os

from ..errors import InvalidURL
from .base import Datastore, ModelCatalog
from .shards import KeyRange, KeyStats, plan_ranges
from .sql import SqlDatastore
from .sql_query import ShardPlan, SqlQuery
from .url import mask, parse_sql_url

__all__ = [
    "Datastore",
    "KeyRange",
    "KeyStats",
    "ModelCatalog",
    "ShardPlan",
    "SqlDatastore",
    "SqlQuery",
    "connect",
    "plan_ranges",
]


def connect(
    url: str | os.PathLike[str], artifact_root: str | os.PathLike[str] | None = None
) -> SqlDatastore:
    """Connect to the datastore at ``url`` (any SQLAlchemy URL, or a path to an SQLite file).

    The connection is checked here, so a wrong host, port, password or database fails now
    (within a few seconds) with an error naming the URL (password masked).
    ``artifact_root`` is where registered models' files go: a folder, or a ``pyarrow.fs``
    URI such as ``s3://bucket/models`` that every node of a cluster can read. Default: beside
    an SQLite file (``shop.db`` -> ``shop.artifacts/``), else ``~/.pinnacle_ray/artifacts/``;
    the ``PINNACLE_ARTIFACT_ROOT`` environment variable overrides the default.
    """
    text = os.fspath(url) if not isinstance(url, str) else url
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme.startswith("mongodb"):
        raise InvalidURL(
            f"{mask(text)!r}: MongoDB datastores are not available in this release; use a "
            "SQL URL (sqlite, postgresql, mysql/mariadb)"
        )
    return SqlDatastore(parse_sql_url(text), artifact_root)
