"""One interface for large writes from many processes: a bulk writer, handed out by the
datastore, that chooses inside itself how the rows reach the table.

``store.bulk_writer(name, key=...)`` returns a writer the caller sends (pickled, e.g. in a
Ray actor's constructor arguments) to every process that writes. Each process opens its
own :class:`BulkPart` (``writer.part()``) and writes Arrow tables to it; when every part
has finished, the process that made the writer calls ``commit()``, or ``abort()`` when the
run failed (``with writer:`` does one or the other). Rows are upserted by ``key``: written
twice, a key still has one row.

How the rows travel is the datastore's choice, not the caller's:

- a SQLite file stages each part's rows in a file of its own and ``commit()`` merges them
  all in one transaction (SQLite takes one writer at a time: parts never queue for its
  lock, and a run that fails writes nothing);
- PostgreSQL, MariaDB/MySQL and MongoDB take concurrent writers, so each part upserts its
  batches as they come, each batch in its own transaction: on PostgreSQL by binary COPY
  into a staging table plus one merge, through one connection the part keeps
  (``sql.copy_writer``); elsewhere through ``store.write`` (batched upserts for
  MariaDB/MySQL, ``bulk_write`` for MongoDB). ``commit()`` has nothing left to do, and a
  rerun completes a failed run without duplicates.

``shared`` (one row) names columns whose value is the same in every row written (a model's
name, a run's timestamp): the rows still carry them, and a writer may store them once.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol

import pyarrow as pa

from ..errors import InvalidKey

__all__ = ["BulkPart", "BulkWriter", "StoreRef", "UpsertWriter", "WriterBase", "bulk_keys"]


class BulkPart(Protocol):
    """One process's share of a bulk write: open it in that process only."""

    def write(self, table: pa.Table) -> int:
        """Write ``table``'s rows (staged or upserted, as the datastore chose); rows taken."""
        ...

    def close(self) -> None:
        """Release what the part holds open (a file, a connection)."""
        ...


class BulkWriter(Protocol):
    """A large write into table ``name`` by ``keys``, from any number of processes.

    Example::

        writer = store.bulk_writer("predictions", key=["id", "model"])
        with writer:                      # commit() on success, abort() on an error
            part = writer.part()          # in each worker (the writer pickles)
            part.write(arrow_table)
            part.close()
    """

    name: str
    keys: list[str]

    def part(self) -> BulkPart:
        """A new part for the calling process."""
        ...

    def commit(self) -> int:
        """Make every part's rows visible; rows this call wrote (0 where the parts' rows
        were written as they came). Call once, after every part has closed."""
        ...

    def abort(self) -> None:
        """Give up the write: whatever the parts staged is removed."""
        ...

    def __enter__(self) -> BulkWriter: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def bulk_keys(key: str | Sequence[str]) -> list[str]:
    """``key`` as a list of column names; ``InvalidKey`` when it names none."""
    keys = [key] if isinstance(key, str) else list(key or [])
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise InvalidKey(
            f"bulk_writer needs key=<column> (or a list of columns) to upsert by; got {key!r}"
        )
    return keys


class StoreRef:
    """A datastore sent to other processes pickled (as its URL) and reconnected only by
    one that writes through it: a part that stages its rows never imports the database
    driver nor opens a connection."""

    def __init__(self, store: Any) -> None:
        self._pickled = pickle.dumps(store)  # a store pickles as its URL (its __reduce__)
        self._store: Any = store

    def get(self) -> Any:
        """The datastore, reconnected on first use in this process."""
        if self._store is None:
            self._store = pickle.loads(self._pickled)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        return {"_pickled": self._pickled, "_store": None}


class WriterBase:
    """What every bulk writer shares: ``with writer:`` commits when the block succeeds and
    aborts when it raises."""

    def commit(self) -> int:  # pragma: no cover - every writer defines its own
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - every writer defines its own
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class UpsertWriter(WriterBase):
    """The bulk writer of a datastore that takes concurrent writers: every part upserts
    its batches through ``store.write`` as they come, each in one transaction, and the
    store picks its own fast path for a large batch (binary COPY on PostgreSQL)."""

    def __init__(self, store: Any, name: str, keys: list[str]) -> None:
        self.name = name
        self.keys = list(keys)
        self._store = StoreRef(store)

    def __repr__(self) -> str:
        return f"UpsertWriter({self.name!r}, key={self.keys})"

    def part(self) -> BulkPart:
        return _UpsertPart(self._store, self.name, self.keys)

    def commit(self) -> int:
        return 0  # every batch was committed when its part wrote it

    def abort(self) -> None:
        pass  # nothing staged: the batches written stay, and a rerun upserts over them


class _UpsertPart:
    def __init__(self, store: StoreRef, name: str, keys: list[str]) -> None:
        self._store, self._name, self._keys = store, name, keys

    def write(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        return int(self._store.get().write(self._name, table, key=self._keys))

    def close(self) -> None:
        pass  # the store's connection pool lives as long as the process
