"""Datastores: where the data lives. ``connect(url)`` picks the backend from the URL."""

from __future__ import annotations

import os

from ..errors import InvalidURL
from .shards import KeyRange, KeyStats, plan_ranges
from .sql import SqlDatastore
from .sql_query import ShardPlan, SqlQuery
from .url import mask, parse_sql_url

__all__ = [
    "KeyRange",
    "KeyStats",
    "ShardPlan",
    "SqlDatastore",
    "SqlQuery",
    "connect",
    "plan_ranges",
]


def connect(url: str | os.PathLike[str]) -> SqlDatastore:
    """Connect to the datastore at ``url`` (any SQLAlchemy URL, or a path to an SQLite file).

    The connection is checked here, so a wrong host, port, password or database fails now
    (within a few seconds) with an error naming the URL (password masked).
    """
    text = os.fspath(url) if not isinstance(url, str) else url
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme.startswith("mongodb"):
        raise InvalidURL(
            f"{mask(text)!r}: MongoDB datastores are not available in this release; use a "
            "SQL URL (sqlite, postgresql, mysql/mariadb)"
        )
    return SqlDatastore(parse_sql_url(text))
