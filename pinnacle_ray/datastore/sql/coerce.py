"""Check that rows written into an existing table fit its column types, before any is sent.

Databases differ in what they do with a value of the wrong kind: SQLite stores ``'x'`` in a
BIGINT column (and the table then fails to read back as numbers), every backend truncates
``2.5`` into an integer column, PyMySQL and SQLAlchemy's processors raise plain
``TypeError``/``ValueError``. Checking the Arrow types against the reflected columns gives one
answer everywhere: what is written reads back as written, or nothing is written.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ...errors import WriteError
from .column_types import arrow_type

__all__ = ["check_fits", "nested_as_json"]


def check_fits(table: sa.Table, batch: pa.Table) -> None:
    """WriteError naming the first column of ``batch`` whose values ``table`` cannot hold."""
    for field in batch.schema:
        column = table.c[field.name]
        try:
            target = arrow_type(column.type)
        except Exception:  # an exotic dialect type: leave it to the database
            continue
        want, got = _kind(target), _kind(field.type)
        if want is None or got in (None, "null") or _fits(want, got, batch.column(field.name)):
            continue
        raise WriteError(
            f"column {field.name!r} of table {table.name!r} holds {want} values "
            f"({column.type}), but the data has {field.type} values there; convert them "
            "(or write to a new table) — nothing was written"
        )


def _kind(t: pa.DataType | None) -> str | None:
    if t is None:
        return None
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_nested(t):
        return "nested"
    return None  # dates and times: drivers accept several forms, the database checks them


def _fits(want: str, got: str, values: pa.ChunkedArray) -> bool:
    if want == got:
        return True
    if want == "float":
        return got == "integer"
    if want == "text":
        # MariaDB's JSON is LONGTEXT (reflected as text): lists and structs go in as JSON.
        return got == "nested"
    if want == "integer" and got == "float":
        # 3.0 from a pandas column with gaps is an integer; 2.5 would be truncated.
        present = values.drop_null()
        if len(present) == 0:
            return True
        floats = present.cast(pa.float64())
        if not pc.all(pc.is_finite(floats)).as_py():
            return False
        return bool(pc.all(pc.equal(pc.floor(floats), floats)).as_py())
    return False


def nested_as_json(table: sa.Table, batch: pa.Table) -> pa.Table:
    """``batch`` with list/struct columns bound for a text column (MariaDB's JSON is
    LONGTEXT) as JSON text, which is what a JSON column holds; the driver takes no dicts."""
    for i, field in enumerate(batch.schema):
        column = table.c[field.name]
        if not pa.types.is_nested(field.type) or isinstance(column.type, sa.JSON):
            continue
        try:
            target = arrow_type(column.type)
        except Exception:
            continue
        if target is not None and _kind(target) == "text":
            texts = [None if v is None else json.dumps(v) for v in batch.column(i).to_pylist()]
            batch = batch.set_column(i, field.name, pa.array(texts, pa.string()))
    return batch
