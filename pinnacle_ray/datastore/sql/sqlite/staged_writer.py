"""The bulk writer of a SQLite file: each process stages its rows in a file of its own and
the commit merges them all into the table in one transaction (see ``staging``).

The parts never connect to the database: a part's first batch decides whether its rows
can be staged (columns ADBC stages as sqlite3 would write them) and leaves its schema
beside its staging file; the commit creates the table from those schemas when it is
missing, merges, and removes the folder. A part whose columns cannot be staged upserts its
batches through ``store.write`` instead, as a server store's parts do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ...bulk import StoreRef, WriterBase
from .staging import StagingFile, merge_staged, remove_staging, stageable, staging_folder

if TYPE_CHECKING:
    from ..connection import SqlConnection

__all__ = ["StagedWriter", "staged_upsert", "staged_writer"]

logger = logging.getLogger("pinnacle_ray.datastore")

_SCHEMA_SUFFIX = ".schema"  # beside each staging file: the Arrow schema of its rows


def staged_writer(
    store: SqlConnection, name: str, keys: list[str], shared: pa.Table | None
) -> StagedWriter | None:
    """A staged writer for table ``name`` of ``store``, or None where staging does not
    apply: not a SQLite file, no ADBC (the fast-sqlite extra), or an existing table whose
    primary key is not ``keys`` (the merge upserts by a unique key on exactly those)."""
    if store.backend != "sqlite" or store.is_memory:
        return None
    if store._has_table(name):
        primary = {c.name for c in store._reflect(name).primary_key.columns}
        if primary != set(keys):
            return None
    folder = staging_folder(store)
    if folder is None:
        return None
    return StagedWriter(store, name, keys, folder, shared)


def staged_upsert(store: SqlConnection, name: str, batch: pa.Table, keys: list[str]) -> int | None:
    """Upsert ``batch`` (keys unique, columns checked) into existing table ``name`` through
    one staging file and one merge, in one transaction: how ``store.write`` takes a large
    write on a SQLite file (ADBC's Arrow ingest and one ``INSERT ... SELECT`` instead of a
    Python tuple per row). Rows written, or None where staging does not apply."""
    if not stageable(batch.schema):
        return None
    writer = staged_writer(store, name, keys, None)
    if writer is None:
        return None
    with writer:
        part = writer.part()
        try:
            part.write(batch)
        finally:
            part.close()  # ADBC lets go of the file before sqlite3 attaches it
    return batch.num_rows


class StagedWriter(WriterBase):
    """Rows staged per process in ``folder`` and merged into table ``name`` by ``keys`` at
    :meth:`commit`, in one transaction; :meth:`abort` removes the staged rows."""

    def __init__(
        self,
        store: SqlConnection,
        name: str,
        keys: list[str],
        folder: str | Path,
        shared: pa.Table | None = None,
    ) -> None:
        self.name = name
        self.keys = list(keys)
        self.folder = str(folder)
        self._store = StoreRef(store)
        self._shared = None if shared is None else shared.slice(0, 1)

    def __repr__(self) -> str:
        return f"StagedWriter({self.name!r}, key={self.keys}, folder={self.folder!r})"

    def part(self) -> StagedPart:
        return StagedPart(self)

    def commit(self) -> int:
        store = self._store.get()
        folder = Path(self.folder)
        created = False
        try:
            for schema in _schemas(folder):  # the table (with its key) and its columns
                created = created or not store._has_table(self.name)
                store.write(self.name, schema.empty_table(), key=self.keys)
            return merge_staged(store, folder, self.name, self.keys, constants=self._shared)
        except BaseException:
            if created:
                _drop_if_empty(store, self.name)
            raise
        finally:
            remove_staging(folder)

    def abort(self) -> None:
        remove_staging(self.folder)


class StagedPart:
    """One process's part of a :class:`StagedWriter`: its staging file, opened on the
    first batch (or, when those columns cannot be staged, upserts through the store)."""

    def __init__(self, writer: StagedWriter) -> None:
        self._writer = writer
        self._file: StagingFile | None = None
        self._direct = False  # columns it cannot stage: upserted batch by batch instead
        shared = writer._shared
        self._shared = [] if shared is None else shared.column_names

    def write(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        if self._file is None and not self._direct:
            self._open(table.schema)
        if self._file is None:
            writer = self._writer
            return int(writer._store.get().write(writer.name, table, key=writer.keys))
        # The shared columns are given to every row at the merge: only the others are staged.
        names = table.column_names
        return self._file.append(table.drop_columns([c for c in self._shared if c in names]))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _open(self, schema: pa.Schema) -> None:
        writer = self._writer
        if not stageable(schema):
            self._direct = True
            return
        self._file = StagingFile(writer.folder)
        # The commit makes the table from this schema: the part never connects to the database.
        blob = schema.remove_metadata().serialize().to_pybytes()
        self._file.path.with_suffix(_SCHEMA_SUFFIX).write_bytes(blob)


def _schemas(folder: Path) -> list[pa.Schema]:
    """The distinct schemas of the rows staged in ``folder``, in a stable order."""
    blobs = {path.read_bytes() for path in sorted(folder.glob(f"*{_SCHEMA_SUFFIX}"))}
    return [pa.ipc.read_schema(pa.py_buffer(b)) for b in sorted(blobs)]


def _drop_if_empty(store: Any, name: str) -> None:
    """Drop table ``name``, which this commit created, unless another writer has written
    into it meanwhile (concurrent runs may share a table)."""
    import sqlalchemy as sa

    try:
        with store._engine.begin() as conn:
            table = store._reflect(name)
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return
            table.drop(conn)
    except Exception:  # the merge's own error is the one to report
        logger.debug("could not drop the empty table %r after a failed merge", name, exc_info=True)
