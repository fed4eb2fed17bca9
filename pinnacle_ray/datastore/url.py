"""Parse datastore URLs and pick maintained default drivers."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .._internal.secrets import mask
from ..errors import InvalidURL

__all__ = ["parse_sql_url"]

# Maintained drivers we install, used when a URL names only the backend.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "sqlite": "sqlite+pysqlite",
}


def parse_sql_url(url: str | os.PathLike[str]) -> URL:
    """A SQLAlchemy URL for ``url``; a bare path means an SQLite file (the embedded default)."""
    text = os.fspath(url)
    if "://" not in text:
        if not text.strip():
            raise InvalidURL("the datastore URL is empty; pass e.g. 'sqlite:///shop.db'")
        return URL.create("sqlite+pysqlite", database=str(Path(text).expanduser().resolve()))
    try:
        parsed = sa.engine.make_url(text)
    except Exception as exc:  # ArgumentError, ValueError from malformed ports, ...
        raise InvalidURL(
            f"cannot parse datastore URL {mask(text)!r} ({_first_line(exc)}); expected "
            "'dialect[+driver]://user:password@host:port/database' or a SQLite file path"
        ) from None
    backend = parsed.get_backend_name()
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    db = parsed.database
    if backend == "sqlite" and db and db != ":memory:" and not db.startswith("file:"):
        parsed = parsed.set(database=str(Path(db).expanduser().resolve()))
    return parsed


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
