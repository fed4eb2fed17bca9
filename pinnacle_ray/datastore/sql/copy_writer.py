"""The bulk writer of a PostgreSQL store: each part upserts its batches as they come, each
in its own transaction (as every server store's parts do), through one connection and
staging table it keeps for all of them (see ``bulk.CopyStage``).

Nothing is staged across batches: a batch is in the table once its part's ``write``
returns, ``commit()`` has nothing left to do, and after a failure a rerun completes the
write without duplicates. Without the ADBC driver (the ``postgres`` extra's fast path) the
store's plain ``UpsertWriter`` is used instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from ..bulk import StoreRef, UpsertWriter
from .bulk import CopyStage, copies
from .write import upsert_staged

if TYPE_CHECKING:
    from .connection import SqlConnection

__all__ = ["CopyWriter", "copy_writer"]


def copy_writer(store: SqlConnection, name: str, keys: list[str]) -> CopyWriter | None:
    """A copy writer for table ``name`` of ``store``, or None where it does not apply (not
    PostgreSQL, or no ADBC driver)."""
    return CopyWriter(store, name, keys) if copies(store) else None


class CopyWriter(UpsertWriter):
    """Upserts batch by batch, each part through a staging connection of its own."""

    def __repr__(self) -> str:
        return f"CopyWriter({self.name!r}, key={self.keys})"

    def part(self) -> CopyPart:
        return CopyPart(self._store, self.name, self.keys)


class CopyPart:
    """One process's part of a :class:`CopyWriter`: its connection opens on the first
    batch and closes with :meth:`close` (or with the process)."""

    def __init__(self, store: StoreRef, name: str, keys: list[str]) -> None:
        self._store, self._name, self._keys = store, name, keys
        self._stage: CopyStage | None = None

    def write(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        store = self._store.get()
        if self._stage is None:
            self._stage = CopyStage(store)
        return int(upsert_staged(store, self._name, table, self._keys, self._stage))

    def close(self) -> None:
        stage, self._stage = self._stage, None
        if stage is not None:
            stage.close()
