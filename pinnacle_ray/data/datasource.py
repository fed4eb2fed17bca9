"""A Ray ``Datasource`` over pre-planned shards: one ReadTask per shard, each streaming tables.

This room knows nothing about SQL or MongoDB. A shard is any picklable object with a
``read()`` generator of Arrow tables; the datastore plans them, Ray runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
import ray
from ray.data import Dataset
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from .._internal.names import ascii_label
from .._internal.runtime import cluster_cpus, ensure_ray

__all__ = ["ReadShard", "ShardDatasource", "StoredShardDatasource", "read_shards"]

# Up to this many CPUs, Ray Data's per-operator reservation idles CPUs a read could use.
SMALL_CLUSTER_CPUS = 8


@runtime_checkable
class ReadShard(Protocol):
    """One independently readable part of a query's result."""

    rows: int | None

    def read(self) -> Iterator[pa.Table]:
        """Yield the shard's rows as Arrow tables of bounded size, all with one schema."""
        ...

    def describe(self) -> str:
        """One line saying which rows this shard reads."""
        ...


def _run_shard(shard: ReadShard, schema: pa.Schema) -> Iterator[pa.Table]:
    produced = False
    for table in shard.read():
        produced = True
        yield table
    if not produced:
        # An empty shard still yields its schema, so an empty result keeps its columns.
        yield schema.empty_table()


class ShardDatasource(Datasource):
    """Reads ``shards`` as parallel ReadTasks; every task yields tables of ``schema``."""

    def __init__(
        self, shards: Sequence[ReadShard], schema: pa.Schema, *, name: str, row_bytes: int
    ) -> None:
        super().__init__()
        self._shards = list(shards)
        self._schema = schema
        self._name = name
        self._row_bytes = max(1, row_bytes)

    def get_name(self) -> str:
        return self._name

    def estimate_inmemory_data_size(self) -> int | None:
        rows = [s.rows for s in self._shards]
        if any(r is None for r in rows):
            return None
        return sum(rows) * self._row_bytes  # type: ignore[arg-type]

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: Any = None,
    ) -> list[ReadTask]:
        # The shard plan, not Ray's parallelism hint, decides the tasks: the plan's ranges
        # come from the data and cover every row exactly once.
        tasks = []
        for index, shard in enumerate(self._shards):
            size = None if shard.rows is None else int(shard.rows * self._row_bytes)
            # num_rows stays None: shard row counts are estimates and Ray trusts this field.
            meta = BlockMetadata(num_rows=None, size_bytes=size, input_files=None, exec_stats=None)
            tasks.append(
                ReadTask(
                    self._reader(index),
                    meta,
                    schema=self._schema,
                    per_task_row_limit=per_task_row_limit,
                )
            )
        return tasks

    def _reader(self, index: int) -> Callable[[], Iterator[pa.Table]]:
        """What the read task of shard ``index`` runs."""
        return partial(_run_shard, self._shards[index], self._schema)


def _store_shard(shard: ReadShard, schema: pa.Schema) -> pa.Table:
    # One object per shard, owned by the caller (a task's own ray.put would die with its
    # worker process). Concatenating chunks copies nothing; the object store keeps one copy.
    return pa.concat_tables(list(_run_shard(shard, schema)))


def _read_stored(stored: ray.ObjectRef) -> Iterator[pa.Table]:
    yield ray.get(stored)


class StoredShardDatasource(ShardDatasource):
    """``shards`` read once into Ray's object store, in the background from the moment it
    is made; its read tasks then hand on the stored tables (waiting for any still being
    read), so each pass over the dataset re-reads memory, not the database."""

    def __init__(
        self,
        shards: Sequence[ReadShard],
        schema: pa.Schema,
        *,
        name: str,
        row_bytes: int,
        num_cpus: float | None = None,
    ) -> None:
        super().__init__(shards, schema, name=name, row_bytes=row_bytes)
        remote = ray.remote(_store_shard).options(num_cpus=1 if num_cpus is None else num_cpus)
        self._stored = [remote.remote(shard, schema) for shard in self._shards]

    def _reader(self, index: int) -> Callable[[], Iterator[pa.Table]]:
        return partial(_read_stored, self._stored[index])


def read_shards(
    shards: Sequence[ReadShard],
    schema: pa.Schema,
    *,
    name: str,
    row_bytes: int,
    num_cpus: float | None = None,
    cache: bool = False,
    block_bytes: int | None = None,
) -> Dataset:
    """A lazy ``ray.data.Dataset`` reading ``shards`` in parallel (Ray started on demand).

    ``num_cpus`` is what each read task reserves (Ray's default: 1). With ``cache``, the
    shards are read into Ray's object store now, in the background (see
    :class:`StoredShardDatasource`): for data read more than once, e.g. several epochs,
    that fits in the object store. ``block_bytes`` bounds the dataset's blocks (Ray Data
    otherwise merges what a task yields up to its own ``target_max_block_size``).
    """
    ensure_ray()
    # Ray Data tags its metrics with the datasource's name and encodes tags as ASCII: a
    # table named 'ünïcödé 表' would fail the read inside Ray (UnicodeEncodeError).
    name = ascii_label(name)
    if cache:
        source: ShardDatasource = StoredShardDatasource(
            shards, schema, name=name, row_bytes=row_bytes, num_cpus=num_cpus
        )
    else:
        source = ShardDatasource(shards, schema, name=name, row_bytes=row_bytes)
    dataset = ray.data.read_datasource(
        source,
        override_num_blocks=max(1, len(shards)),
        num_cpus=num_cpus,
    )
    if cluster_cpus() <= SMALL_CLUSTER_CPUS:
        # Ray Data reserves half the CPUs per operator; on a small cluster that leaves a
        # read running one task at a time (measured on 2 CPUs: 2 shards took 2.1 s instead
        # of 1.1 s). Set on this dataset's own context only; the global one is untouched.
        dataset.context.op_resource_reservation_enabled = False
    if block_bytes is not None:
        # This dataset's own context again: the user's global DataContext is untouched.
        current = dataset.context.target_max_block_size
        dataset.context.target_max_block_size = min(block_bytes, current or block_bytes)
    return dataset
