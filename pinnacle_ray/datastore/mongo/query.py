"""Queries against a MongoDB datastore: a filter, columns and a key; count, plan, read.

A read is planned like a SQL one (the pure planner in ``shards.py``): key statistics from
the data (count, documents without the key, min and max by sorting on the key), split
points at quantile ranks of the sorted key (``sort + skip + limit 1`` each, an index walk
when the key is indexed), then one Ray ReadTask per half-open key range. Each shard's
filter is ``{"$and": [user filter, {key: {"$gte": lo, "$lt": hi}}]}``; documents without
the key get their own ``{key: null}`` shard, so every document is read exactly once.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import bson
import pyarrow as pa
from ray.data import Dataset

from ..._internal.runtime import cluster_cpus
from ...data import read_shards
from ...errors import ColumnNotFound, ConfigError, InvalidKey
from ..shards import (
    KeyRange,
    KeyStats,
    ShardPlan,
    default_shard_count,
    is_dense_integer,
    plan_ranges,
    quantile_ranks,
)
from ..watermark import Watermark, watermark_of
from .bson_arrow import (
    PlannedColumns,
    documents_to_table,
    field_value,
    kind_of,
    plan_columns,
    scalar_type,
    top_level_fields,
)
from .read import MongoShard
from .schema import SchemaLike, declared_types

if TYPE_CHECKING:
    from .connection import MongoConnection

__all__ = ["MongoQuery"]

logger = logging.getLogger("pinnacle_ray.datastore")

SAMPLE_DOCS = 1000
# A read task yields a table once its documents reach this many BSON bytes (or
# BATCH_ROWS documents), whatever the sizes of the first documents: a few large documents
# among small ones must not make one huge block.
BLOCK_BYTES = 32 * 1024 * 1024
BATCH_ROWS = 65_536
# MongoDB compares values only within a type bracket: a range filter on numbers never
# matches strings. A key must therefore hold one bracket for ranges to cover it.
_BRACKETS = {"int": "number", "float": "number", "objectid": "objectid", "string": "string"}


class MongoQuery:
    """Documents of a collection matching ``filter``, as columns, ready to count, plan, read.

    Example::

        q = store.find("reviews", filter={"lang": "en"}, projection=["text", "user.age"])
        q.count(); print(q.plan()); ds = q.to_dataset()
    """

    def __init__(
        self,
        store: MongoConnection,
        collection: str,
        *,
        filter: Mapping[str, Any] | None = None,
        projection: Sequence[str] | Mapping[str, Any] | None = None,
        key: str | None = "_id",
        include_id: bool = True,
        schema: SchemaLike | None = None,
    ) -> None:
        self.store = store
        self.table_name = store._require_collection(collection)
        if filter is not None and not isinstance(filter, Mapping):
            raise ConfigError(f"filter must be a dict (a MongoDB query), got {filter!r}")
        self.filter: dict[str, Any] = dict(filter or {})
        self._declared = declared_types(schema)
        self._requested = _columns(projection)
        if self._requested is None and self._declared:
            # As pymongoarrow's Schema: a schema without a projection names the columns.
            self._requested = [_check_field(name, "schema field") for name in self._declared]
        undeclared = [name for name in self._declared if name not in (self._requested or [])]
        if undeclared:
            raise ConfigError(
                f"schema declares {undeclared}, which the projection does not read "
                f"({self._requested}); add them to the projection or drop them from schema"
            )
        self._include_id = include_id
        self.key = _check_field(key or "_id", "key")
        self._after: Watermark | None = None  # since(): only documents with key > this
        # Checked now, as a SQL query checks its columns when it is built.
        self._planned()
        if self.key != "_id":
            self._check_key_exists()

    # -- public --------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        return self.schema().names

    def __repr__(self) -> str:
        since = f", since {self._after.model} v{self._after.version}" if self._after else ""
        return (
            f"MongoQuery(collection={self.table_name!r}, filter={self.filter!r}, "
            f"key={self.key!r}{since}, store={self.store.url})"
        )

    def since(self, name: str, version: int | None = None) -> MongoQuery:
        """This query's documents whose key is past what model ``name`` (its latest version,
        or ``version``) was trained on: continue training on what came in since, e.g.
        ``trainer.fit(train=q.since("mlp"), resume_from="mlp")``.

        The watermark is the largest key of the version's training query (its lineage); the
        new documents are ``{key: {"$gt": watermark}}``, so the read is planned over them
        only. Documents added later with a smaller key are not included: use an increasing
        key (``_id`` ObjectIds, an insertion date, a counter).
        """
        kind = self._key_kind()
        mark = watermark_of(self.store.models, name, version, self.key, scalar_type(kind))
        if kind == "objectid" and isinstance(mark.value, str):
            if not bson.ObjectId.is_valid(mark.value):
                raise InvalidKey(
                    f"{name} version {mark.version} recorded key {self.key!r} up to "
                    f"{mark.value!r}, which is not an ObjectId as this query's key values are"
                )
            mark = Watermark(mark.model, mark.version, mark.key, bson.ObjectId(mark.value))
        out = copy.copy(self)
        out._after = mark
        out.__dict__.pop("_read_plan", None)
        return out

    def count(self) -> int:
        """Number of documents the filter matches (``count_documents``)."""
        return int(
            self.store._call(
                lambda db: db[self.table_name].count_documents(self._match),
                f"counting documents of {self._describe_short()}",
            )
        )

    def schema(self) -> pa.Schema:
        """The Arrow schema every shard of this query yields."""
        return self._planned().schema

    def lineage(self) -> dict[str, Any]:
        """What was read, enough to read it again: collection, filter, columns, key, URL."""
        out: dict[str, Any] = {
            "store": self.store.url,
            "collection": self.table_name,
            "filter": _json_safe(self.filter),
            "columns": self.columns,
            "key": self.key,
        }
        if self._after is not None:
            out.update(since=_json_safe(self._after.lineage()))
        plan = getattr(self, "_read_plan", None)
        if plan is not None:
            out.update(rows=plan.rows, strategy=plan.strategy)
            if plan.key_range is not None:
                out.update(
                    key_min=_json_safe(plan.key_range[0]), key_max=_json_safe(plan.key_range[1])
                )
        return out

    def plan(self, shards: int | None = None) -> ShardPlan:
        """Plan the read: half-open ranges of the key from the data, one Ray task each."""
        if shards is not None and (
            isinstance(shards, bool) or not isinstance(shards, int) or shards < 1
        ):
            raise ConfigError(f"shards must be a positive integer or None, got {shards!r}")
        stats = self._key_stats()
        planned = self._planned()
        total = stats.count + stats.nulls
        n = shards or default_shard_count(total, cluster_cpus())
        points = None
        if n > 1 and stats.count > 1 and not is_dense_integer(stats):
            points = self._split_points(stats.count, n)
        try:
            ranges = plan_ranges(stats, n, points)
        except TypeError as exc:  # values Python cannot order (e.g. Decimal128)
            raise InvalidKey(f"key {self.key!r} cannot be split into ranges: {exc}") from None
        shard_list = [
            MongoShard(
                uri=self.store._uri,
                database=self.store.database,
                collection=self.table_name,
                filter=self._range_filter(r),
                projection=self._projection(),
                planned=planned,
                rows=r.rows,
                label=r.describe(self.key),
                batch_rows=BATCH_ROWS,
                batch_bytes=BLOCK_BYTES,
                secrets=self.store._secrets,
            )
            for r in ranges
        ]
        key_range = (stats.min, stats.max) if stats.count else None
        return ShardPlan(
            "key", self.key, total, shard_list, key_range=key_range, notes=self._type_notes()
        )

    def to_arrow(self) -> pa.Table:
        """All documents as one Arrow table, read here in the driver: for small results
        (lookups, previews). Training data should use :meth:`to_dataset`."""
        planned = self._planned()
        docs = self.store._call(
            lambda db: list(db[self.table_name].find(self._match, self._projection())),
            f"reading {self._describe_short()}",
        )
        unknown = not planned.schema.names or any(pa.types.is_null(f.type) for f in planned.schema)
        if docs and unknown:
            # Documents written since the query was planned (e.g. into a collection that
            # was empty then): all of them are here, so plan from them.
            columns = self._requested or self._output_fields(docs)
            source = f"all {len(docs):,} documents read by to_arrow()"
            planned = plan_columns(docs, columns, self.table_name, self._declared, source)
        return documents_to_table(docs, planned, self.table_name)

    def to_dataset(
        self, shards: int | None = None, *, num_cpus: float | None = None, cache: bool = False
    ) -> Dataset:
        """A ``ray.data.Dataset`` of the documents, its key-range shards read in parallel
        Ray tasks. ``num_cpus`` is what each read task reserves (default 1); ``cache=True``
        reads them into Ray's object store now, in the background, for several passes."""
        plan = self.plan(shards)
        self._read_plan = plan
        return read_shards(
            plan.shards,
            self.schema(),
            name=f"PinnacleMongo({self.table_name})",
            row_bytes=self._row_bytes,
            num_cpus=num_cpus,
            cache=cache,
            block_bytes=BLOCK_BYTES,
        )

    # -- planning ------------------------------------------------------------------------
    def _describe_short(self) -> str:
        shown = f" with filter {_show_filter(self._match)}" if self._match else ""
        return f"collection {self.table_name!r}{shown}"

    def _planned(self) -> PlannedColumns:
        if not hasattr(self, "_planned_cache"):
            sample = self.store._call(
                lambda db: list(
                    db[self.table_name].find(self.filter, self._projection()).limit(SAMPLE_DOCS)
                ),
                f"sampling documents of {self._describe_short()}",
            )
            if not sample and self._requested is None:
                # An empty result still has the collection's columns (as a SQL table does).
                sample = self.store._call(
                    lambda db: list(db[self.table_name].find({}).limit(SAMPLE_DOCS)),
                    f"sampling documents of collection {self.table_name!r}",
                )
            columns = self._requested or self._output_fields(sample)
            extra = self._values_beyond(sample, columns)
            planned = plan_columns(
                sample + extra,
                columns,
                self.table_name,
                self._declared,
                self._sample_source(sample, extra),
            )
            # Only an estimate for Ray's memory planning: blocks are bounded by bytes as read.
            sizes = [len(bson.encode(d)) for d in sample]
            self._row_bytes = max(1, sum(sizes) // len(sizes)) if sizes else 64
            self._planned_cache = planned
        return self._planned_cache

    def _sample_source(self, sample: list[Any], extra: list[Any]) -> str:
        """Which documents the planned column types came from, in words."""
        if not sample:
            return "no document (the query matched none when planned)"
        span = f"_id {_show(sample[0].get('_id'))} to _id {_show(sample[-1].get('_id'))}"
        if len(sample) < SAMPLE_DOCS:
            text = f"all {len(sample):,} documents matched when the read was planned ({span})"
        else:
            text = (
                f"the first {len(sample):,} documents in the collection's natural order "
                f"({span}); later documents were not looked at"
            )
        if extra:
            text += f", and {len(extra)} later one(s) for fields those did not hold"
        return text

    def _type_notes(self) -> tuple[str, ...]:
        """The plan's lines saying where each column's type came from."""
        planned = self._planned()
        inferred = [n for n in planned.schema.names if n not in planned.declared]
        notes = []
        if planned.declared:
            notes.append(f"column types declared by schema=: {sorted(planned.declared)}")
        if inferred:
            notes.append(
                f"column types of {inferred[:20]}{' ...' if len(inferred) > 20 else ''} "
                f"planned from {planned.source}; a document of another type fails its read "
                "with MixedTypes (declare types with schema= to fix them)"
            )
        notes.append(
            f"blocks of at most {BLOCK_BYTES:,} BSON bytes or {BATCH_ROWS:,} documents as read "
            "(Ray Data merges them into dataset blocks of under twice that)"
        )
        return tuple(notes)

    def _output_fields(self, docs: list[Any]) -> list[str]:
        """The columns when no projection names them: the documents' top-level fields."""
        if not docs:
            return []
        columns = top_level_fields(docs)
        return columns if self._include_id else [c for c in columns if c != "_id"]

    def _values_beyond(self, sample: list[Any], columns: list[str]) -> list[Any]:
        """For requested fields the sample has no value of: one document that has (to plan
        their type), or ``ColumnNotFound`` when no document of the collection has them."""
        if self._requested is None:
            return []
        extra = []
        for column in columns:
            if any(field_value(d, column) is not None for d in sample):
                continue
            found = self.store._call(
                lambda db, c=column: db[self.table_name].find_one(
                    self._and({c: {"$ne": None}}),
                    {c: 1},
                ),
                f"looking for field {column!r} in {self._describe_short()}",
            )
            if found is not None:
                extra.append(found)
                continue
            anywhere = self.store._call(
                lambda db, c=column: db[self.table_name].find_one({c: {"$exists": True}}, {c: 1}),
                f"looking for field {column!r} in collection {self.table_name!r}",
            )
            if anywhere is None:
                known = self._known_fields()
                if not known or column in known:
                    # An empty collection has no fields to check against; a field seen now
                    # was written since the lookup above (a concurrent writer).
                    continue
                raise ColumnNotFound(
                    f"no document of collection {self.table_name!r} has field {column!r}; "
                    f"fields seen: {known[:30]}. Check the spelling (nested fields are "
                    "dotted: 'user.age')"
                )
        return extra

    def _check_key_exists(self) -> None:
        found = self.store._call(
            lambda db: db[self.table_name].find_one({self.key: {"$exists": True}}, {self.key: 1}),
            f"looking for key {self.key!r} in collection {self.table_name!r}",
        )
        known = self._known_fields() if found is None else []
        if found is None and known and self.key not in known:
            raise InvalidKey(
                f"key {self.key!r} is a field of no document of collection "
                f"{self.table_name!r}; fields seen: {known[:30]}. Pick a sortable field every "
                "document has (default '_id')"
            )

    def _known_fields(self) -> list[str]:
        docs = self.store._call(
            lambda db: list(db[self.table_name].find({}).limit(100)),
            f"listing fields of collection {self.table_name!r}",
        )
        names: dict[str, None] = {}
        for doc in docs:
            for name, value in doc.items():
                names.setdefault(name, None)
                if isinstance(value, Mapping):
                    for sub in value:
                        names.setdefault(f"{name}.{sub}", None)
        return list(names)

    def _projection(self) -> dict[str, Any] | None:
        """What to fetch: the requested fields (ancestors only, as MongoDB refuses a path
        and its parent together) plus ``_id``, which names documents in errors."""
        if self._requested is None:
            return None
        fields: dict[str, int] = {"_id": 1}
        for c in sorted(self._requested, key=lambda c: c.count(".")):
            if not any(c == f or c.startswith(f + ".") for f in fields if f != "_id"):
                fields[c] = 1
        return fields

    @property
    def _match(self) -> dict[str, Any]:
        """The documents this query reads: the filter, and past the watermark after since()."""
        if self._after is None:
            return self.filter
        past = {self.key: {"$gt": self._after.value}}
        return {"$and": [self.filter, past]} if self.filter else past

    def _and(self, condition: Mapping[str, Any]) -> dict[str, Any]:
        return {"$and": [self._match, dict(condition)]} if self._match else dict(condition)

    def _key_kind(self) -> str | None:
        """The BSON kind of the key's values (None when no document has the key)."""
        doc = self.store._call(
            lambda db: db[self.table_name].find_one({self.key: {"$ne": None}}, {self.key: 1}),
            f"reading a value of key {self.key!r} of collection {self.table_name!r}",
        )
        return kind_of(field_value(doc, self.key)) if doc is not None else None

    def _key_stats(self) -> KeyStats:
        key, name = self.key, self.table_name
        what = f"key {key!r} of {self._describe_short()}"

        def stats(db: Any) -> tuple[int, int, Any, Any]:
            coll = db[name]
            total = coll.count_documents(self._match)
            nulls = coll.count_documents(self._and({key: None}))
            if total == nulls:
                return total, nulls, None, None
            present = self._and({key: {"$ne": None}})
            lo = coll.find(present, {key: 1}).sort(key, 1).limit(1).next()
            hi = coll.find(present, {key: 1}).sort(key, -1).limit(1).next()
            arrays = coll.find_one(self._and({key: {"$type": "array"}}), {key: 1})
            if arrays is not None:
                raise InvalidKey(
                    f"key {key!r} holds an array in _id {_show(arrays['_id'])}; a document "
                    "would fall into several key ranges. Use a scalar field as the key"
                )
            return total, nulls, lo, hi

        total, nulls, lo_doc, hi_doc = self.store._call(stats, f"reading the range of {what}")
        if total and total == nulls:
            raise InvalidKey(
                f"no document of {self._describe_short()} has key field {key!r}; pass "
                "key='<a field every document has>' (default '_id')"
            )
        lo = field_value(lo_doc, key) if lo_doc else None
        hi = field_value(hi_doc, key) if hi_doc else None
        if lo_doc is not None:
            lo_kind, hi_kind = kind_of(lo), kind_of(hi)
            if _BRACKETS.get(lo_kind or "", lo_kind) != _BRACKETS.get(hi_kind or "", hi_kind):
                raise InvalidKey(
                    f"key {key!r} holds {lo_kind} and {hi_kind} values (e.g. _id "
                    f"{_show(lo_doc['_id'])} and _id {_show(hi_doc['_id'])}); MongoDB compares "
                    "ranges within one type, so the key must hold one type"
                )
        if nulls:
            logger.info(
                "%d document(s) of %s have no key %r; they are read in a shard of their own",
                nulls,
                self._describe_short(),
                key,
            )
        return KeyStats(count=total - nulls, nulls=nulls, min=lo, max=hi)

    def _split_points(self, count: int, shards: int) -> list[Any]:
        ranks = quantile_ranks(count, shards)
        key, present = self.key, self._and({self.key: {"$ne": None}})

        def points(db: Any) -> list[Any]:
            coll = db[self.table_name]
            out = []
            for rank in ranks:
                doc = next(
                    iter(coll.find(present, {key: 1}).sort(key, 1).skip(rank - 1).limit(1)), None
                )
                if doc is not None:
                    out.append(field_value(doc, key))
            return out

        return self.store._call(points, f"computing split points of key {key!r}")

    def _range_filter(self, r: KeyRange) -> dict[str, Any]:
        if r.unbounded:
            return dict(self._match)
        if r.nulls == "only":
            return self._and({self.key: None})
        bounds: dict[str, Any] = {}
        if r.lo is not None:
            bounds["$gte"] = r.lo
        if r.hi is not None:
            bounds["$lt"] = r.hi
        return self._and({self.key: bounds or {"$ne": None}})


def _columns(projection: Sequence[str] | Mapping[str, Any] | None) -> list[str] | None:
    if projection is None:
        return None
    if isinstance(projection, str):
        raise ConfigError(
            f"projection must be a list of field names, got the string {projection!r}"
        )
    if isinstance(projection, Mapping):
        names = [k for k, v in projection.items() if v]
    else:
        names = list(projection)
    if not names:
        raise ConfigError("projection is empty; pass None for every field or some field names")
    for name in names:
        _check_field(name, "projection field")
    if len(set(names)) != len(names):
        raise ConfigError(f"projection names a field twice: {names}")
    return names


def _check_field(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or name.startswith("$") or "\x00" in name:
        raise ConfigError(
            f"{what} must be a field name such as 'stars' or 'user.age' (no leading '$'), "
            f"got {name!r}"
        )
    if any(not part for part in name.split(".")):
        raise ConfigError(f"{what} {name!r} has an empty part between dots")
    return name


def _show(value: Any) -> str:
    return repr(str(value)) if isinstance(value, bson.ObjectId) else repr(value)


def _show_filter(value: Any) -> str:
    text = repr(_json_safe(value))
    return text if len(text) <= 300 else text[:300] + "...}"


def _json_safe(value: Any) -> Any:
    """``value`` with BSON-only types as text, for lineage records and messages."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bson.ObjectId, bson.Decimal128, bson.Regex)):
        return str(value)
    return value
