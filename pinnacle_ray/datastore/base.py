"""What every datastore offers the rooms above it.

The registry stores through :class:`Datastore` only, so it works on any backend that has
these methods. ``datastore/`` imports nothing above it: ``store.models`` and ``store.jobs``
are built by factories that ``pinnacle_ray.connect`` hands the store (see
:mod:`.wiring`); :class:`ModelVersions` is the little the datastore itself reads of the
registry (a version's lineage, for ``q.since``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from .bulk import BulkWriter

__all__ = ["Datastore", "ModelVersions", "Rows", "VersionRecord", "store_of"]


class Rows(Protocol):
    """A query whose (small) result can be read in the calling process."""

    def to_arrow(self) -> pa.Table:
        """All rows as one Arrow table."""
        ...


@runtime_checkable
class Datastore(Protocol):
    """The public surface of a datastore that the registry (and other rooms) build on."""

    @property
    def url(self) -> str:
        """The connection URL with any password masked."""
        ...

    @property
    def artifact_root(self) -> str:
        """Where model artifacts are stored: a local folder or a ``pyarrow.fs`` URI."""
        ...

    def tables(self) -> list[str]:
        """Names of the tables (collections) that exist."""
        ...

    def table(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> Rows:
        """Rows of ``name`` matching equality/IN conditions ``where``."""
        ...

    def insert(self, name: str, data: Any, key: str | Sequence[str]) -> int:
        """Insert rows; raise ``DuplicateKey`` (writing nothing) if a key exists."""
        ...

    def write(self, name: str, data: Any, key: str | Sequence[str]) -> int:
        """Upsert rows by key."""
        ...

    def delete(self, name: str, where: Mapping[str, Any]) -> int:
        """Delete the rows matching ``where``; returns how many."""
        ...

    def bulk_writer(
        self, name: str, key: str | Sequence[str], shared: pa.Table | None = None
    ) -> BulkWriter:
        """A writer for a large upsert by ``key`` from many processes (``datastore.bulk``)."""
        ...


class VersionRecord(Protocol):
    """A registered model version as the datastore reads it: its number and lineage."""

    version: int
    lineage: dict[str, Any] | None


class ModelVersions(Protocol):
    """What the datastore room itself reads of ``store.models``: a version's record, whose
    lineage gives ``q.since(name)`` its watermark. The registry the store is handed
    (``pinnacle_ray.registry.ModelRegistry``) offers much more; this is not a copy of it."""

    def get(
        self, name: str, version: int | None = None, handle: str | None = None
    ) -> VersionRecord: ...


def store_of(query: object) -> Datastore | None:
    """The datastore a query reads from (where a fit registers, where predictions go), or
    None for anything else (a plain ``ray.data.Dataset``, a DataFrame)."""
    store = getattr(query, "store", None)
    return store if isinstance(store, Datastore) else None
