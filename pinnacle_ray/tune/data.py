"""A sweep's data, read from the database once for all its trials.

Each trial would otherwise plan and read the query again (8 trials, 8 reads of the same
rows). The sweep reads it once into Ray's object store when it fits there and hands the
trials a :class:`SharedQuery`: it answers the questions a trainer asks a query (schema,
row count, key, lineage) from what the sweep already knows, and returns the read dataset.
A query too large for the object store is shared unread, and each trial streams it.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import ray.data

from ..errors import EmptyResult
from ..trainers.caching import estimated_bytes, fits_in_object_store
from ..trainers.tabular import quiet, read_once

__all__ = ["SharedQuery", "share"]

logger = logging.getLogger("pinnacle_ray.tune")


class SharedQuery:
    """A datastore query as the trials of one sweep see it: already planned (and read)."""

    def __init__(
        self,
        dataset: ray.data.Dataset,
        *,
        schema: pa.Schema,
        rows: int,
        key: str | None,
        lineage: dict[str, Any] | None,
        label: str,
        materialized: bool,
    ) -> None:
        self.dataset = dataset
        self.key = key
        self.rows = rows
        self.materialized = materialized
        self._schema = schema
        self._lineage = lineage
        self._label = label

    def __repr__(self) -> str:
        state = "read once" if self.materialized else "streamed per trial"
        return f"SharedQuery({self._label}, {self.rows} rows, {state})"

    def schema(self) -> pa.Schema:
        return self._schema

    def count(self) -> int:
        return self.rows

    def lineage(self) -> dict[str, Any] | None:
        return self._lineage

    def to_dataset(
        self, shards: int | None = None, *, num_cpus: float | None = None, cache: bool = False
    ) -> Any:
        """The sweep's dataset of the query (its reads were planned once, for every trial;
        read once already when it fits the object store, so ``cache`` changes nothing)."""
        return self.dataset


def share(query: Any, role: str, read_cpus: float) -> Any:
    """``query`` ready to hand to every trial: read once into the object store when it
    fits a fifth of it, else planned once with ``read_cpus`` per read task. Anything that
    is not a datastore query (a ``ray.data.Dataset``, None) passes unchanged."""
    if query is None or isinstance(query, ray.data.Dataset) or not hasattr(query, "to_dataset"):
        return query
    rows, schema = query.count(), query.schema()
    if rows == 0:
        raise EmptyResult(f"the {role} query returns no rows ({query!r}); check its where/params")
    fits = fits_in_object_store(estimated_bytes(schema, rows))
    dataset = quiet(query.to_dataset(num_cpus=None if fits else read_cpus))
    if fits:
        dataset = read_once(dataset)
        logger.info("%s query: read once into Ray's object store for every trial", role)
    else:
        logger.warning(
            "%s query: %s rows do not fit a fifth of Ray's object store; each trial reads them",
            role,
            f"{rows:,}",
        )
    lineage = query.lineage() if callable(getattr(query, "lineage", None)) else None
    return SharedQuery(
        dataset,
        schema=schema,
        rows=rows,
        key=getattr(query, "key", None),
        lineage=lineage,
        label=repr(query),
        materialized=fits,
    )
