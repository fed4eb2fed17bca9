"""Arrow-native bulk upsert for PostgreSQL, through ADBC (as the fast reads are).

A large Arrow table is ingested into a temporary staging table in one bulk call (binary
COPY), then merged into the target with one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE``, and the transaction commits: the same
all-or-nothing upsert as the general path, without a Python object per value. It applies only
where it is exact: an existing table with a unique key on the write's key, and columns of
types the staging table stores as the general path would. Otherwise the caller falls back.

Not SQLite: ADBC links its own copy of the SQLite library, and two copies in one process
break SQLite's file locks (closing ADBC's connection dropped the WAL that the process's
sqlite3 connections were still writing to: their later commits were invisible to other
processes, seen in the tests). SQLite writes stay on sqlite3.
"""

from __future__ import annotations

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

__all__ = ["BULK_MIN_ROWS", "bulk_upsert"]

logger = logging.getLogger("pinnacle_ray.datastore")

# Below this, the staging table costs more than it saves.
BULK_MIN_ROWS = 2_000


def bulk_upsert(
    store: SqlConnection, table: sa.Table, batch: pa.Table, keys: list[str], unique: bool
) -> int | None:
    """Upsert ``batch`` (keys already unique, columns checked) into existing ``table``; the
    rows written, or None when the bulk path does not apply (nothing was done)."""
    writer = store._fast_reader()
    if writer != "adbc-postgresql" or not unique or batch.num_rows < BULK_MIN_ROWS:
        return None
    data = _stageable(batch)
    if data is None:
        return None
    stage = f"pinnacle_stage_{uuid.uuid4().hex[:16]}"
    merge = _merge_sql(store, table, stage, batch.column_names, keys)
    try:
        with _connect(store) as conn, conn.cursor() as cur:
            cur.adbc_ingest(stage, data, mode="create", temporary=True)
            cur.execute(merge)
            cur.execute(f'DROP TABLE "{stage}"')
            conn.commit()
    except Exception as exc:  # ADBC's errors are not SQLAlchemy's; the transaction rolled back
        message = mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, store._secrets)
        raise WriteError(
            f"writing to table {table.name!r}: {message} — nothing was written (the transaction "
            "was rolled back)"
        ) from None
    return batch.num_rows


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


def _merge_sql(
    store: SqlConnection, table: sa.Table, stage: str, columns: list[str], keys: list[str]
) -> str:
    source = sa.table(stage, *[sa.column(c) for c in columns])
    select = sa.select(*[source.c[c] for c in columns])
    stmt = postgresql.insert(table).from_select(columns, select)
    updates = [c for c in columns if c not in keys]
    if updates:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in updates}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    return str(stmt.compile(dialect=store._engine.dialect))


def _connect(store: SqlConnection) -> Any:
    import adbc_driver_postgresql.dbapi as adbc_pg

    return adbc_pg.connect(libpq_uri(store._url))
