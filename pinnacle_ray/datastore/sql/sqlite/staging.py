"""Upserts into SQLite from several processes at once: each process appends its Arrow
batches to a staging file of its own, and one merge upserts every staged row into the
table, in one transaction.

SQLite takes one writer at a time. Processes that upsert batch by batch queue for its lock
(and its busy handler sleeps past the moment it frees), so their writes run one after the
other through Python's per-row ``executemany``. A staging file has one writer, so the
processes write in parallel, through ADBC's Arrow bulk ingest (~3x faster than
``executemany``); the merge is one ``INSERT ... SELECT ... ON CONFLICT`` per file inside
SQLite (~1 s per million rows). Only ADBC writes a staging file, and sqlite3 reads it only
once its writer has closed it; only sqlite3 opens the database: two SQLite libraries in one
process must not hold the same file open (each one's POSIX locks are lost when the other
closes it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ...._internal.extras import installed
from ....errors import QueryError, WriteError
from .text import naive_utc, sqlite_text

if TYPE_CHECKING:  # SQLAlchemy only where the driver merges: the staging actors never load it
    import sqlalchemy as sa

    from ..connection import SqlConnection

__all__ = ["StagingFile", "merge_staged", "stageable", "staging_folder"]

logger = logging.getLogger("pinnacle_ray.datastore")

STAGE_TABLE = "stage"
_PREFIX = ".%s.staging-"  # % the database file's name
_OWNER = "owner.json"  # which process (host, pid) the folder belongs to
_UNOWNED_AFTER_S = 3600.0
# SQLite attaches at most 10 databases to a connection (SQLITE_MAX_ATTACHED's default).
_ATTACH_AT_ONCE = 8


def staging_folder(store: SqlConnection) -> Path | None:
    """A new folder for one run's staging files, beside the SQLite file (None when the
    store is not a SQLite file). Folders that killed runs left there go first."""
    if store.backend != "sqlite" or store.is_memory or not store._url.database:
        return None
    if not installed("adbc_driver_sqlite"):  # the fast-sqlite extra: rows upsert batch by batch
        return None
    database = Path(store._url.database).expanduser().resolve()
    _remove_orphans(database)
    folder = database.parent / f"{_PREFIX % database.name}{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    (folder / _OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    return folder


def _remove_orphans(database: Path) -> None:
    """Remove the staging folders of runs whose driver died (SIGKILL, power loss) before
    removing its own: on this host, a folder whose owner process is gone; a folder that
    never got its owner written, once it is an hour old."""
    host = socket.gethostname()
    prefix = _PREFIX % database.name
    for folder in database.parent.iterdir():
        if not folder.name.startswith(prefix):
            continue
        try:
            owner = json.loads((folder / _OWNER).read_text())
            orphan = owner["host"] == host and not _alive(int(owner["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            try:
                orphan = time.time() - folder.stat().st_mtime > _UNOWNED_AFTER_S
            except OSError:
                continue
        if orphan:
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed %s, which a killed pr.predict run left", folder.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def stageable(schema: pa.Schema) -> bool:
    """Whether ADBC can stage these columns as the values sqlite3 would write."""
    for field in schema:
        kind = field.type
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or (pa.types.is_timestamp(kind) and kind.unit != "ns")
            or pa.types.is_date(kind)
        ):
            return False
    return True


class StagingFile:
    """One process's staging file in ``folder``; open it in that process only."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / f"{uuid.uuid4().hex}.db"
        self._conn: Any = None

    def append(self, table: pa.Table) -> int:
        """Stage ``table``'s rows (dates and times as SQLite's text, booleans as 0/1)."""
        if self._conn is None:
            import adbc_driver_sqlite.dbapi as adbc_sqlite

            # A staging file needs no durability (a run that fails or dies removes it), so
            # no journal and no fsync: each batch is one ingest statement, written once.
            self._conn = adbc_sqlite.connect(str(self.path), autocommit=True)
            with self._conn.cursor() as cur:
                for pragma in ("journal_mode=OFF", "synchronous=OFF"):
                    cur.execute(f"PRAGMA {pragma}")
                    cur.fetchall()
        with self._conn.cursor() as cur:
            cur.adbc_ingest(STAGE_TABLE, _as_stored(table), mode="create_append")
        return table.num_rows

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _as_stored(table: pa.Table) -> pa.Table:
    """The columns as the sqlite3 write path stores them (see ``sql.write._renderable``)."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = sqlite_text(naive_utc(column, "sqlite"))
        elif pa.types.is_date(field.type):
            column = sqlite_text(column)
        elif pa.types.is_boolean(field.type):
            column = pc.cast(column, pa.int64())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def merge_staged(
    store: SqlConnection,
    folder: str | Path,
    name: str,
    keys: list[str],
    constants: pa.Table | None = None,
) -> int:
    """Upsert every row staged in ``folder`` into table ``name`` (which has a unique key on
    ``keys``) by ``keys``, in one transaction, however many files there are; then remove the
    folder. Rows merged.

    ``constants`` (one row) holds columns whose value is the same in every row (a model's
    name, a run's timestamp): they are not staged but given to every merged row here, so
    the actors write and the merge reads only the columns that vary."""
    files = sorted(Path(folder).glob("*.db"))
    if not files:
        remove_staging(folder)
        return 0
    fixed = {} if constants is None else _as_stored(constants.slice(0, 1)).to_pylist()[0]
    table = store._reflect(name)
    quote = store._engine.dialect.identifier_preparer.quote
    raw = store._engine.raw_connection()
    dbapi = raw.driver_connection
    previous = dbapi.isolation_level
    merged = 0
    try:
        files = _attachable(files, Path(folder))
        aliases = [f"pinnacle_stage_{i}" for i in range(len(files))]
        dbapi.isolation_level = None  # explicit BEGIN/COMMIT: ATTACH must be outside one
        for path, alias in zip(files, aliases, strict=True):
            dbapi.execute(f"ATTACH DATABASE ? AS {alias}", (f"file:{path}?mode=ro",))
        try:
            dbapi.execute("BEGIN IMMEDIATE")
            try:
                for alias in aliases:
                    merged += _merge_one(dbapi, table, alias, keys, quote, fixed)
                dbapi.execute("COMMIT")
            except BaseException:
                dbapi.execute("ROLLBACK")
                raise
        finally:
            for alias in aliases:
                dbapi.execute(f"DETACH DATABASE {alias}")
    except WriteError:
        raise
    except Exception as exc:
        from ..driver_errors import translate

        err = translate(exc, secrets=store._secrets, context=f"writing to table {name!r}")
        if isinstance(err, QueryError):  # the rows, not a query, were wrong: as store.write
            err = WriteError(f"{err} — nothing was written (the transaction was rolled back)")
        raise err from None
    finally:
        dbapi.isolation_level = previous
        raw.close()
        remove_staging(folder)
    return merged


def _attachable(files: list[Path], folder: Path) -> list[Path]:
    """``files``, or at most ``_ATTACH_AT_ONCE`` files holding the same rows, so that one
    transaction can attach and merge them all (SQLite cannot attach inside a transaction).
    Files with the same columns are copied into one, in order; a staging file is the run's
    own, so a failure here leaves the table untouched."""
    if len(files) <= _ATTACH_AT_ONCE:
        return files
    by_columns: dict[tuple[str, ...], list[Path]] = {}
    for path in files:
        by_columns.setdefault(_columns_of(path), []).append(path)
    if len(by_columns) > _ATTACH_AT_ONCE:
        raise WriteError(
            f"the run staged {len(by_columns)} different column sets; one merge takes at most "
            f"{_ATTACH_AT_ONCE}: write batches with the same columns — nothing was written"
        )
    return [
        group[0] if len(group) == 1 else _combined(group, folder) for group in by_columns.values()
    ]


def _columns_of(path: Path) -> tuple[str, ...]:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return tuple(r[1] for r in conn.execute(f"PRAGMA table_info({STAGE_TABLE})"))
    finally:
        conn.close()


def _combined(group: list[Path], folder: Path) -> Path:
    """One staging file with the rows of every file in ``group`` (same columns), in order."""
    import sqlite3

    target = folder / f"combined-{uuid.uuid4().hex}.db"
    shutil.copyfile(group[0], target)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF"):
            conn.execute(f"PRAGMA {pragma}")
        rest = group[1:]
        for start in range(0, len(rest), _ATTACH_AT_ONCE):
            chunk = rest[start : start + _ATTACH_AT_ONCE]
            aliases = [f"pinnacle_part_{i}" for i in range(len(chunk))]
            for path, alias in zip(chunk, aliases, strict=True):
                conn.execute(f"ATTACH DATABASE ? AS {alias}", (f"file:{path}?mode=ro",))
            conn.execute("BEGIN")
            for alias in aliases:
                conn.execute(f"INSERT INTO main.{STAGE_TABLE} SELECT * FROM {alias}.{STAGE_TABLE}")
            conn.execute("COMMIT")
            for alias in aliases:
                conn.execute(f"DETACH DATABASE {alias}")
    finally:
        conn.close()
    return target


def _merge_one(
    dbapi: Any,
    table: sa.Table,
    alias: str,
    keys: list[str],
    quote: Any,
    fixed: dict[str, Any],
) -> int:
    staged = [r[1] for r in dbapi.execute(f"PRAGMA {alias}.table_info({STAGE_TABLE})")]
    staged = [c for c in staged if c not in fixed]
    unknown = [c for c in [*staged, *fixed] if c not in table.c]
    if unknown:
        raise WriteError(
            f"table {table.name!r} has no column(s) {unknown}; its columns are "
            f"{[c.name for c in table.columns]}"
        )
    written = [*staged, *fixed]
    columns = ", ".join(quote(c) for c in written)
    values = ", ".join([*(quote(c) for c in staged), *("?" for _ in fixed)])
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in written if c not in keys)
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    # "WHERE true" tells SQLite's parser that ON CONFLICT belongs to the INSERT.
    cursor = dbapi.execute(
        f"INSERT INTO main.{quote(table.name)} ({columns}) "
        f"SELECT {values} FROM {alias}.{STAGE_TABLE} WHERE true "
        f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) {conflict}",
        tuple(fixed.values()),
    )
    return int(cursor.rowcount or 0)


def remove_staging(folder: str | Path) -> None:
    """Delete a run's staging folder (after its merge, or after the run failed)."""
    shutil.rmtree(folder, ignore_errors=True)
