"""Where a datastore's model artifacts live: in the database, a folder or a ``pyarrow.fs`` URI.

Default: beside an SQLite file (``shop.db`` -> ``shop.artifacts/``); for server stores
(PostgreSQL, MariaDB/MySQL, MongoDB) inside the database itself (``pinnacle-db://artifacts``,
the store's chunked blob store), so every machine that reaches the database reaches the
models. ``PINNACLE_RAY_ARTIFACT_ROOT`` overrides the default; a shared URI (``s3://``, ``gs://``,
``file:///shared/path``) may be given instead. Versions registered before the in-database
default live under ``~/.pinnacle_ray/artifacts/<server>/`` (:func:`legacy_artifact_root`)
and stay readable. Nothing is created here: the registry creates folders on first use.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .._internal.constants import ARTIFACT_ROOT_ENV, env_text
from ..errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "ARTIFACT_ROOT_ENV",
    "DB_ROOT",
    "DB_SCHEME",
    "default_artifact_root",
    "legacy_artifact_root",
    "resolve_artifact_root",
]

# Artifacts inside the datastore: <DB_ROOT>/<name>/<uuid>/model in the registry rows.
DB_SCHEME = "pinnacle-db"
DB_ROOT = f"{DB_SCHEME}://artifacts"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def resolve_artifact_root(url: URL, artifact_root: str | os.PathLike[str] | None) -> str:
    """The artifact root for a store at ``url``: the given one, the env override, or the default."""
    if artifact_root is None:
        artifact_root = env_text(ARTIFACT_ROOT_ENV) or None
    if artifact_root is None:
        return default_artifact_root(url)
    return normalize_root(artifact_root)


def default_artifact_root(url: URL) -> str:
    """``<db>.artifacts`` beside an SQLite file; inside the database (``pinnacle-db://
    artifacts``) for server stores; a per-process folder for an in-memory SQLite."""
    backend = url.get_backend_name()
    database = url.database or ""
    if backend == "sqlite" and database and database != ":memory:":
        path = Path(database.removeprefix("file:").split("?", 1)[0]).expanduser().resolve()
        return str(path.with_suffix(".artifacts"))
    if backend == "sqlite":
        return str(Path.home() / ".pinnacle_ray" / "artifacts" / "sqlite-memory")
    return DB_ROOT


def legacy_artifact_root(url: URL) -> str | None:
    """The folder server stores defaulted to before artifacts moved into the database
    (``~/.pinnacle_ray/artifacts/<backend>-<host>-<database>``); None for SQLite."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return None
    home = Path.home() / ".pinnacle_ray" / "artifacts"
    parts = [backend, url.host or "localhost", url.database or "default"]
    return str(home / "-".join(_UNSAFE.sub("_", p).strip("_") or "_" for p in parts))


def normalize_root(value: str | os.PathLike[str]) -> str:
    """An absolute local path, or a ``scheme://`` URI without credentials in it."""
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"artifact_root must be a folder or a URI like 's3://bucket/models', got {value!r}"
        )
    if "://" not in text:
        return str(Path(text).expanduser().resolve())
    scheme, rest = text.split("://", 1)
    if not _SCHEME.fullmatch(scheme):
        raise ConfigError(f"artifact_root {text!r} has no valid URI scheme; e.g. 's3://bucket/x'")
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        raise ConfigError(
            f"artifact_root {scheme}://***@... carries credentials; they would be stored in "
            "the registry. Pass them through the environment (e.g. AWS_ACCESS_KEY_ID) instead"
        )
    return text.rstrip("/") if len(rest.rstrip("/")) > 0 else text
