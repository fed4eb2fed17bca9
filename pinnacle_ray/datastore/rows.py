"""What a write takes (rows, a DataFrame, an Arrow table, a Ray Dataset) as Arrow batches,
checked and with one row per key: the first steps of every backend's upsert and insert."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DuplicateKey, InvalidKey, WriteError
from .identifiers import validate_identifier

if TYPE_CHECKING:
    import pandas as pd
    import ray.data

__all__ = ["BATCH_ROWS", "WriteData", "keyed_batch", "to_arrow_batches"]

WriteData = Union[
    "pa.Table",
    "pa.RecordBatch",
    "pd.DataFrame",
    Sequence[Mapping[str, Any]],
    Mapping[str, Sequence[Any]],
    "ray.data.Dataset",
]
# Rows per batch read from a Ray Dataset, and per statement where a backend splits a batch.
BATCH_ROWS = 5_000


def to_arrow_batches(data: WriteData) -> Iterable[pa.Table]:
    """``data`` as Arrow tables: a Ray Dataset streams batch by batch, anything else is one."""
    if isinstance(data, pa.Table):
        return [data]
    if isinstance(data, pa.RecordBatch):
        return [pa.Table.from_batches([data])]
    module = type(data).__module__
    if module.startswith("ray.data"):
        return (
            pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
            for b in data.iter_batches(batch_format="pyarrow", batch_size=BATCH_ROWS)
        )
    return [_as_arrow(data, module)]


def _as_arrow(data: WriteData, module: str) -> pa.Table:
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if data and not all(isinstance(r, Mapping) for r in data):
            raise WriteError("rows must be dicts mapping column name to value")
    elif not (module.startswith("pandas") or isinstance(data, Mapping)):
        raise WriteError(
            f"cannot write a {type(data).__name__}; pass a list of dicts, a dict of lists, a "
            "pandas DataFrame, a pyarrow Table or a ray.data.Dataset"
        )
    try:
        if module.startswith("pandas"):
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Mapping):
            return _no_text_as_bytes(pa.Table.from_pydict(dict(data)), dict(data))
        table = pa.Table.from_pylist(list(data))
        return _no_text_as_bytes(table, {n: [r.get(n) for r in data] for n in table.column_names})
    except OverflowError as exc:
        raise WriteError(
            f"cannot build columns from the rows: {exc} (an integer past 64 bits); store "
            "such numbers as text or Decimal"
        ) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise WriteError(
            f"cannot build columns from the rows: {str(exc).splitlines()[0]}; give each column "
            "values of one type"
        ) from None


def _no_text_as_bytes(table: pa.Table, values: Mapping[str, Any]) -> pa.Table:
    """``table``, unless Arrow made a column of text and bytes into bytes (it silently
    encodes the text), which would read back as bytes what was written as text."""
    for f in table.schema:
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            column = values.get(f.name)
            if column is not None and any(isinstance(v, str) for v in column):
                raise WriteError(
                    f"column {f.name!r} mixes text and bytes values; give it values of one "
                    "type (encode the text, or decode the bytes)"
                )
    return table


def keyed_batch(
    batch: pa.Table, keys: list[str], *, insert_only: bool = False, dialect: str | None = None
) -> pa.Table:
    """``batch`` checked for a write by ``keys``: valid column names (for ``dialect``), key
    columns present and never null, and one row per key (the last one, as if the rows
    were upserted one after another; an insert refuses repeated keys with DuplicateKey)."""
    for column in batch.column_names:
        validate_identifier(column, "column name", dialect)
    missing = [k for k in keys if k not in batch.column_names]
    if missing:
        raise InvalidKey(
            f"key column(s) {missing} are not in the data; its columns are {batch.column_names}"
        )
    for k in keys:
        nulls = batch.column(k).null_count
        if nulls:
            raise InvalidKey(f"key column {k!r} has {nulls} NULL value(s); every row needs a key")
    if batch.num_rows > 1 and not _unique_rows(batch, keys):
        # Keep the last row per key, as if the rows were upserted one after another.
        indexed = batch.select(keys).append_column("__pr_row", pa.array(range(batch.num_rows)))
        last = indexed.group_by(keys, use_threads=False).aggregate([("__pr_row", "max")])
        if last.num_rows != batch.num_rows and insert_only:
            counts = indexed.group_by(keys, use_threads=False).aggregate([("__pr_row", "count")])
            repeated = counts.filter(pc.greater(counts.column("__pr_row_count"), 1))
            example = {k: repeated.column(k)[0].as_py() for k in keys}
            raise DuplicateKey(
                f"the rows to insert repeat the key {example} ({repeated.num_rows} key(s) occur "
                "more than once); nothing was written"
            )
        if last.num_rows != batch.num_rows:
            order = pc.sort_indices(last.column("__pr_row_max"))
            batch = batch.take(pc.take(last.column("__pr_row_max"), order))
    return batch


def _unique_rows(batch: pa.Table, keys: list[str]) -> bool:
    """True when no two rows of ``batch`` share a key, proved cheaply: key columns holding
    one value throughout (a model name, a version) cannot tell rows apart, so the check
    runs on the others, and a single one is counted without grouping."""
    distinct = {k: pc.count_distinct(batch.column(k)).as_py() for k in keys}
    varying = [k for k, n in distinct.items() if n > 1]
    # Several varying columns (or none): the caller groups, which is exact.
    return len(varying) == 1 and distinct[varying[0]] == batch.num_rows
