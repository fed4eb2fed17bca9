"""Arrow-native bulk upsert for PostgreSQL, through ADBC (as the fast reads are).

A large Arrow table is ingested into a temporary staging table in one bulk call (binary
COPY), then merged into the target with one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE``, and the transaction commits: the same
all-or-nothing upsert as the general path, without a Python object per value. It applies only
where it is exact: an existing table with a unique key on the write's key, and columns of
types the staging table stores as the general path would. Otherwise the caller falls back.

A :class:`CopyStage` is one connection with its staging tables. ``store.write`` opens one
for its write and closes it; a bulk-writer part (``pr.predict``'s actors) keeps one open for
all its batches, so a batch costs its COPY and its merge only, not a new connection, a
staging table created and dropped, and the target's columns read again (measured on
PostgreSQL on 2 cores, 1M rows upserted in 20 batches of 50,000 from one process: 4.5-4.8 s
with a connection and a staging table per batch, 3.2-3.8 s through one stage).

Not SQLite: ADBC links its own copy of the SQLite library, and two copies in one process
break SQLite's file locks (closing ADBC's connection dropped the WAL that the process's
sqlite3 connections were still writing to: their later commits were invisible to other
processes, seen in the tests). SQLite writes stay on sqlite3.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..._internal.secrets import mask
from ...errors import WriteError
from .read import libpq_uri

if TYPE_CHECKING:
    from .connection import SqlConnection

__all__ = ["BULK_MIN_ROWS", "CopyStage", "bulk_upsert"]

logger = logging.getLogger("pinnacle_ray.datastore")

# Below this, a staging table made for one write costs more than it saves.
BULK_MIN_ROWS = 2_000
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a duplicate key


def bulk_upsert(
    store: SqlConnection, table: sa.Table, batch: pa.Table, keys: list[str], unique: bool
) -> int | None:
    """Upsert ``batch`` (keys already unique, columns checked) into existing ``table``; the
    rows written, or None when the bulk path does not apply (nothing was done)."""
    if not copies(store) or not unique or batch.num_rows < BULK_MIN_ROWS:
        return None
    # An upsert, often over existing keys: merged at once. Closing drops the staging table.
    with contextlib.closing(CopyStage(store, insert_first=False)) as stage:
        return stage.upsert(table, batch, keys)


def copies(store: SqlConnection) -> bool:
    """Whether ``store`` takes bulk upserts through a :class:`CopyStage` (PostgreSQL with
    its ADBC driver installed)."""
    return store._fast_reader() == "adbc-postgresql"


class CopyStage:
    """One ADBC connection to ``store`` (PostgreSQL) and its temporary staging tables, one
    per Arrow schema seen, for any number of upserts; each upsert is its own transaction.
    ``tables`` is where a caller keeps what it learned about its target tables (their
    columns and key), so a long run reads them once.

    ``insert_first``: move each batch with a plain ``INSERT`` until a key turns out to be
    in the table already (see ``_conflicts``); for writes that mostly add new keys, such as
    a prediction run's batches of a new model version."""

    def __init__(self, store: SqlConnection, *, insert_first: bool = True) -> None:
        self._store = store
        self._conn: Any = None
        self._stages: dict[pa.Schema, str] = {}
        self._compiled: dict[tuple[str, str, tuple[str, ...]], tuple[str, str]] = {}
        # A plain INSERT moves staged rows while no key was in the table before (a first
        # run's batches): half a merge's work, 0.055 s against 0.12 s per 50,000 rows on
        # PostgreSQL 15. The first duplicate key rolls that batch back and merges it with
        # ON CONFLICT, as every later batch through this stage then is (a rerun).
        self._conflicts = not insert_first
        self._prefix = f"pinnacle_stage_{uuid.uuid4().hex[:12]}"
        self.tables: dict[str, sa.Table | None] = {}

    def upsert(self, table: sa.Table, batch: pa.Table, keys: list[str]) -> int | None:
        """Upsert ``batch`` (keys unique, columns checked) into existing ``table``, which
        has a unique key on ``keys``: COPY into the staging table, an insert or a merge
        from it, commit. The rows written, or None (nothing done) when a column's type
        cannot be staged."""
        data = _stageable(batch)
        if data is None:
            return None
        stage = self._stages.setdefault(data.schema, f"{self._prefix}_{len(self._stages)}")
        insert, merge = self._statements(table, stage, data.column_names, keys)
        try:
            if not self._conflicts:
                try:
                    return self._move(stage, data, insert)
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:
                        raise
                self._rollback()
                self._conflicts = True  # a rerun: merge this batch and the next ones
            return self._move(stage, data, merge)
        except Exception as exc:  # ADBC's errors are not SQLAlchemy's
            self._rollback()
            raise WriteError(
                f"writing to table {table.name!r}: {mask(_reason(exc), self._store._secrets)} — "
                "nothing was written (the transaction was rolled back)"
            ) from None

    def _move(self, stage: str, data: pa.Table, statement: str) -> int:
        """One transaction: ``data`` into ``stage`` (created by the first batch of its
        schema, again after a rollback), ``statement`` from it into the target, commit."""
        conn = self._connection()
        with conn.cursor() as cur:
            cur.adbc_ingest(stage, data, mode="create_append", temporary=True)
            cur.execute(statement)
            cur.execute(f'TRUNCATE "{stage}"')
        conn.commit()
        return data.num_rows

    def close(self) -> None:
        """Close the connection (its staging tables go with it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a connection the server already dropped
                logger.debug("closing a staging connection failed", exc_info=True)

    def _connection(self) -> Any:
        if self._conn is None:
            import adbc_driver_postgresql.dbapi as adbc_pg

            self._conn = adbc_pg.connect(libpq_uri(self._store._url))
        return self._conn

    def _rollback(self) -> None:
        """Undo the failed transaction; a connection that cannot roll back is dropped (the
        next upsert opens a new one)."""
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except Exception:
            self.close()

    def _statements(
        self, table: sa.Table, stage: str, columns: list[str], keys: list[str]
    ) -> tuple[str, str]:
        """(plain insert, merge) from ``stage`` into ``table``, compiled once (a stage's
        name stands for its columns)."""
        cache = (table.name, stage, tuple(keys))
        if cache not in self._compiled:
            self._compiled[cache] = _move_sql(self._store, table, stage, columns, keys)
        return self._compiled[cache]


def _reason(exc: Exception) -> str:
    """What the server said went wrong (``new row ... violates check constraint "x"``),
    without the failed statement ADBC puts first; else the error's first line."""
    details = dict(getattr(exc, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    if primary:
        state = details.get(b"PG_DIAG_SQLSTATE", b"").decode(errors="replace")
        text = primary.decode(errors="replace")
        return f"{text} (SQLSTATE {state})" if state else text
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _stageable(batch: pa.Table) -> pa.Table | None:
    """``batch`` with values as the general path stores them, or None if a type is not one
    the staging table keeps exactly (dates, decimals, nested types, ...)."""
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        kind = field.type
        if (
            pa.types.is_timestamp(kind)
            or pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
        ):
            columns.append(column)
        else:
            return None
    return pa.Table.from_arrays(columns, names=batch.column_names)


def _move_sql(
    store: SqlConnection, table: sa.Table, stage: str, columns: list[str], keys: list[str]
) -> tuple[str, str]:
    """The statements that move ``stage``'s rows into ``table``: a plain ``INSERT ...
    SELECT`` and the same with ``ON CONFLICT`` on ``keys`` (an upsert)."""
    source = sa.table(stage, *[sa.column(c) for c in columns])
    insert = postgresql.insert(table).from_select(columns, sa.select(*source.c))
    updates = [c for c in columns if c not in keys]
    if updates:  # on_conflict_* return a new statement: ``insert`` stays plain
        merge = insert.on_conflict_do_update(
            index_elements=keys, set_={c: insert.excluded[c] for c in updates}
        )
    else:
        merge = insert.on_conflict_do_nothing(index_elements=keys)
    dialect = store._engine.dialect
    return str(insert.compile(dialect=dialect)), str(merge.compile(dialect=dialect))
