"""Tabular data for the classic trainers (scikit-learn, XGBoost): check a query before any
read, read it once into Ray's object store, and turn blocks into the arrays a framework
wants. Both frameworks hold their whole training set in memory, so reading it once up front
costs nothing extra and leaves every CPU to the fit afterwards."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data.dataset import MaterializedDataset

from .._internal.runtime import planned_execution
from ..errors import ColumnNotFound, EmptyResult, NonFiniteValues, SingleClass
from .features import check_columns

__all__ = [
    "Blocks",
    "QueryFacts",
    "block_refs",
    "check_query",
    "concat_table",
    "distinct_values",
    "is_numeric",
    "label_array",
    "query_datasets",
    "quiet",
    "read_once",
    "require_classes",
    "rows_of_worker",
]

MAX_DISTINCT = 10_000

# A materialized dataset's blocks in order, each with its row count.
Blocks = list[tuple[ray.ObjectRef, int]]


class QueryFacts:
    """What a query says about itself before it is read: its schema and row count."""

    def __init__(self, schema: pa.Schema | None, rows: int | None, key: str | None) -> None:
        self.schema = schema
        self.rows = rows
        self.key = key

    def holdout(self, fraction: float | None, seed: int) -> dict[str, Any] | None:
        """The lineage of a key-hash validation split of this query (None without one)."""
        if fraction is None or self.key is None:
            return None
        return {"holdout": "hash of the key", "fraction": fraction, "seed": seed}

    def text_columns(self, columns: Sequence[str]) -> list[str]:
        """The ``columns`` whose type is not a number (strings, dates, ...)."""
        if self.schema is None:
            return []
        return [c for c in columns if c in self.schema.names and not is_numeric(self.schema, c)]


def is_numeric(schema: pa.Schema, column: str) -> bool:
    """True for integer, float, boolean, decimal and all-NULL columns."""
    kind = schema.field(column).type
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_null(kind)
    )


def check_query(
    query: Any,
    role: str,
    features: Sequence[str],
    label: str | None,
    *,
    any_type: Collection[str] = (),
    columns_made: bool = False,
    vectors: bool = False,
) -> QueryFacts:
    """Check ``query``'s columns and that it has rows, without reading it (a datastore query
    plans both); a ``ray.data.Dataset`` is checked by its schema only. ``columns_made``: a
    transform makes the columns from the query's, so only the rows are checked;
    ``vectors``: features may be lists of numbers (a torch model's embeddings)."""
    is_dataset = isinstance(query, ray.data.Dataset)
    schema = query.schema() if callable(getattr(query, "schema", None)) else None
    schema = getattr(schema, "base_schema", schema) if is_dataset else schema
    if schema is not None and not columns_made:
        check_columns(schema, features, label, any_type=any_type, vectors=vectors)
    rows = None
    if hasattr(query, "count") and not is_dataset:
        rows = query.count()
        if rows == 0:
            raise EmptyResult(
                f"the {role} query returns no rows ({query!r}); check its where/params"
            )
    key = getattr(query, "key", None)
    key = key if isinstance(key, str) and schema is not None and key in schema.names else None
    return QueryFacts(schema, rows, key)


def read_once(dataset: ray.data.Dataset) -> MaterializedDataset:
    """Read ``dataset`` into Ray's object store, shards in parallel, with progress shown.

    A dataset read already (e.g. a sweep's query, read once for every trial) is returned
    as it is: there is nothing to execute, and waiting for a free CPU first would stall a
    trial whose sweep fills the cluster (up to ``wait_for_cpus``' 10 s per trial)."""
    if isinstance(dataset, MaterializedDataset):
        return dataset
    with planned_execution():
        return dataset.materialize()


def block_refs(dataset: ray.data.Dataset) -> Blocks:
    """The blocks of ``dataset`` in Ray's object store with their row counts (the dataset is
    read first unless it is already materialized): what a framework that holds its whole
    training set in memory hands its workers, each taking its rows with
    :func:`rows_of_worker`, without a streaming split (and its coordinator actors) over
    data that is already in the object store."""
    if not isinstance(dataset, MaterializedDataset):
        dataset = read_once(dataset)
    blocks = [
        (ref, meta.num_rows)
        for bundle in dataset.iter_internal_ref_bundles()
        for ref, meta in zip(bundle.block_refs, bundle.metadata, strict=True)
    ]
    # A materialized block knows its rows; should one not, count it (zero-copy on its node).
    return [(ref, rows if rows is not None else _block_rows(ref)) for ref, rows in blocks]


def _block_rows(ref: ray.ObjectRef) -> int:
    block = ray.get(ref)
    return int(block.num_rows if isinstance(block, pa.Table) else len(block))


def rows_of_worker(blocks: Blocks, rank: int, world: int, columns: Sequence[str]) -> pa.Table:
    """Worker ``rank`` of ``world``'s equal, contiguous share of the rows in ``blocks``
    (``columns`` only): zero-copy slices of the blocks it overlaps, fetched in one call (from
    the local object store on one node). Rows differ by at most one between workers."""
    total = sum(rows for _, rows in blocks)
    start, stop = total * rank // world, total * (rank + 1) // world
    wanted, offset = [], 0
    for ref, rows in blocks:
        low, high = max(start, offset) - offset, min(stop, offset + rows) - offset
        if low < high:
            wanted.append((ref, low, high))
        offset += rows
    tables = []
    for (_, low, high), block in zip(wanted, ray.get([w[0] for w in wanted]), strict=True):
        table = (
            block
            if isinstance(block, pa.Table)
            else pa.Table.from_pandas(block, preserve_index=False)
        )
        tables.append(table.slice(low, high - low).select(list(columns)))
    if not tables:  # no rows for this worker: the schema of the first block, empty
        first = ray.get(blocks[0][0]) if blocks else pa.table({c: pa.array([]) for c in columns})
        first = (
            first
            if isinstance(first, pa.Table)
            else pa.Table.from_pandas(first, preserve_index=False)
        )
        return first.select(list(columns)).slice(0, 0)
    return pa.concat_tables(tables, promote_options="permissive")


def concat_table(
    blocks: list[ray.ObjectRef], columns: Sequence[str] | None = None, key: str | None = None
) -> pa.Table:
    """One Arrow table of a materialized dataset's blocks (``to_arrow_refs()``): zero-copy
    from the local object store; ``columns`` picks and orders the columns, blocks come in
    the order of their first ``key``."""
    tables = [t if isinstance(t, pa.Table) else pa.Table.from_pandas(t) for t in ray.get(blocks)]
    tables = [t for t in tables if t.num_rows] or tables[:1]
    if key is not None and all(key in t.column_names for t in tables):
        # Shards are key ranges: in order of their first key they are usually in key order.
        tables.sort(key=lambda t: t.column(key)[0].as_py() if t.num_rows else 0)
    if not tables:
        raise EmptyResult("the dataset has no rows")
    table = pa.concat_tables(tables, promote_options="permissive")
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ColumnNotFound(
                f"column(s) {missing} are not in the data; its columns are {table.column_names}"
            )
        table = table.select(list(columns))
    return table


def distinct_values(dataset: ray.data.Dataset, column: str, limit: int = MAX_DISTINCT) -> list[Any]:
    """The sorted distinct non-NULL values of ``column`` (one pass; each block sends only its
    own distinct values), at most ``limit`` of them."""

    def block_distinct(batch: pa.Table) -> pa.Table:
        values = pc.unique(batch.column(column).drop_null())
        return pa.table({"v": values})

    parts = dataset.select_columns([column]).map_batches(
        block_distinct, batch_format="pyarrow", batch_size=None
    )
    with planned_execution():
        found: set[Any] = set()
        for batch in parts.iter_batches(batch_format="pyarrow", batch_size=None):
            found.update(v for v in batch.column("v").to_pylist() if v == v)  # drop NaN
            if len(found) > limit:
                break
    return sorted(found)[:limit]


def label_array(table: pa.Table, label: str, where: str) -> np.ndarray:
    """The label column as numpy (strings stay strings); NonFiniteValues on NULL/NaN."""
    column = table.column(label)
    missing = column.null_count
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        missing = int(np.isnan(values).sum())
    if missing:
        everything = " (every row)" if missing == len(values) else ""
        raise NonFiniteValues(
            f"label column {label!r} is NULL or NaN in {missing} of {len(values)} rows of "
            f"{where}{everything}; filter them out in the query (e.g. WHERE {label} IS NOT "
            "NULL) before training"
        )
    return values


def require_classes(classes: Sequence[Any], label: str, where: str) -> None:
    """SingleClass when a classifier's label has fewer than two distinct values."""
    if len(classes) < 2:
        shown = [c.item() if hasattr(c, "item") else c for c in classes]
        raise SingleClass(
            f"label column {label!r} has a single class {shown} in {where}; a "
            "classifier needs at least two. Check the query's filter, or train a regressor"
        )


def query_datasets(
    train: Any, valid: Any, read_cpus: float, *, silent: bool = False
) -> dict[str, ray.data.Dataset]:
    """Datasets for the queries (a ``ray.data.Dataset`` passes as is), read tasks taking
    ``read_cpus`` each; ``silent`` for those streamed inside the fit task, whose
    progress bars would reach the driver's terminal as escape-code noise."""
    out = {}
    for role, query in (("train", train), ("valid", valid)):
        if query is None:
            continue
        dataset = (
            query if isinstance(query, ray.data.Dataset) else query.to_dataset(num_cpus=read_cpus)
        )
        out[role] = quiet(dataset) if silent else dataset
    return out


def quiet(dataset: ray.data.Dataset) -> ray.data.Dataset:
    """``dataset`` without Ray Data's progress bars: where it is executed in another process
    (a fit task, Ray Train's split coordinator) they reach the terminal as escape codes."""
    dataset.context.enable_progress_bars = False
    dataset.context.print_on_execution_start = False
    return dataset
