"""Writes to MongoDB: idempotent upserts by key with ``bulk_write``, insert-only writes that
refuse existing keys, and deletes.

A collection written for the first time gets a unique index on the key fields (as a SQL
table gets a primary key), so concurrent writers cannot create two documents for one key
and ``insert`` can claim a key safely (the registry allocates versions that way). Each row
becomes ``UpdateOne({key: value}, {"$set": {other fields}}, upsert=True)``; a dotted column
(``user.age``) is set as a nested field, so what a dotted projection reads writes back to the
same place. Re-running a write duplicates nothing.

MongoDB has no multi-document transaction on a standalone server, so every check (keys
present and non-null, values BSON can store) runs before the first batch is sent; a server
failure part-way leaves the batches before it written, and re-running the write completes
it without duplicates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from bson import Decimal128, ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure, PyMongoError

from ...errors import ConfigError, DuplicateKey, InvalidIdentifier, InvalidKey, WriteError
from ..rows import WriteData, keyed_batch, to_arrow_batches
from ..where_values import check_where_value
from .driver_errors import is_duplicate_key, translate

if TYPE_CHECKING:
    from .connection import MongoConnection

__all__ = ["delete_documents", "insert", "match_filter", "upsert"]

logger = logging.getLogger("pinnacle_ray.datastore")

BATCH_ROWS = 5_000
KEY_INDEX = "pinnacle_key"
NAMESPACE_EXISTS = 48


def upsert(store: MongoConnection, name: str, data: WriteData, key: str | Sequence[str]) -> int:
    """Upsert ``data`` into collection ``name`` by ``key``; returns documents written."""
    store._check_collection_name(name)  # before a Dataset's first batch is read
    keys = _keys(key)
    ready = False
    written = 0
    # A Ray Dataset streams: each of its batches is checked before it is written. Any other
    # input is one table, checked whole before the first document is sent.
    for batch in to_arrow_batches(data):
        batch = _prepared_batch(batch, keys, insert_only=False)
        if not ready:
            _ensure_collection(store, name, keys)
            ready = True
        for start in range(0, batch.num_rows, BATCH_ROWS):
            docs = _documents(batch.slice(start, BATCH_ROWS))
            ops = [_upsert_op(doc, keys) for doc in docs]
            store._call(
                lambda db, ops=ops: db[name].bulk_write(ops, ordered=True),
                f"upserting into collection {name!r}",
            )
            written += len(docs)
    return written


def insert(store: MongoConnection, name: str, data: WriteData, key: str | Sequence[str]) -> int:
    """Insert ``data`` into ``name``; ``DuplicateKey`` (nothing written) when a key exists."""
    store._check_collection_name(name)
    keys = _keys(key)
    batches = _prepared(data, keys, insert_only=True)
    coll = _ensure_collection(store, name, keys)
    docs = [doc for batch in batches for doc in _documents(batch)]
    if not docs:
        return 0
    for start in range(0, len(docs), BATCH_ROWS):
        chunk = docs[start : start + BATCH_ROWS]
        existing = store._call(
            lambda _db, chunk=chunk: coll.find_one(
                {"$or": [{k: d.get(k) for k in keys} for d in chunk]}, {k: 1 for k in keys}
            ),
            f"checking keys in collection {name!r}",
        )
        if existing is not None:
            shown = {k: existing.get(k) for k in keys}
            raise DuplicateKey(
                f"collection {name!r} already has a document with key {shown}; nothing was written"
            )
    if "_id" not in keys:
        for doc in docs:
            doc.setdefault("_id", ObjectId())  # known ids, so a lost race can be undone
    inserted: list[dict[str, Any]] = []
    try:
        for start in range(0, len(docs), BATCH_ROWS):
            chunk = docs[start : start + BATCH_ROWS]
            try:
                coll.insert_many(chunk, ordered=True)
            except BulkWriteError as exc:
                inserted += chunk[: int((exc.details or {}).get("nInserted", 0))]
                raise
            inserted += chunk
    except PyMongoError as exc:
        _undo(coll, inserted)
        if is_duplicate_key(exc):
            raise DuplicateKey(
                f"collection {name!r} got a document with one of these {keys} from another "
                "writer first; nothing was written"
            ) from None
        raise translate(
            exc, secrets=store._secrets, context=f"inserting into collection {name!r}"
        ) from None
    return len(docs)


def delete_documents(store: MongoConnection, name: str, where: Mapping[str, Any]) -> int:
    """Delete the documents of ``name`` matching ``where`` (equality / IN); how many."""
    if not isinstance(where, Mapping) or not where:
        raise ConfigError(
            f"delete needs where={{field: value}} naming the documents; got {where!r}. "
            "Refusing to delete every row (document) of a collection"
        )
    store._require_collection(name)
    query = match_filter(where)
    result = store._call(
        lambda db: db[name].delete_many(query), f"deleting from collection {name!r}"
    )
    return int(result.deleted_count)


def match_filter(where: Mapping[str, Any]) -> dict[str, Any]:
    """A MongoDB filter for SQL-style ``where``: ``{f: v}`` equality, ``{f: [..]}`` IN,
    ``{f: None}`` missing or null."""
    out: dict[str, Any] = {}
    for name, value in where.items():
        if not isinstance(name, str) or not name or name.startswith("$"):
            raise ConfigError(f"where names field {name!r}; use plain field names")
        # A dict would be read as operators ({"$ne": None}): refused, as on SQL.
        check_where_value(name, value)
        if isinstance(value, (list, tuple, set, frozenset)):
            out[name] = {"$in": [_bson_value(v) for v in value]}
        else:
            out[name] = _bson_value(value)
    return out


def _keys(key: str | Sequence[str]) -> list[str]:
    keys = [key] if isinstance(key, str) else list(key or [])
    if not keys:
        raise InvalidKey("write needs key=<field> (or a list) to upsert by; got none")
    for k in keys:
        if not isinstance(k, str) or not k or k.startswith("$"):
            raise InvalidKey(f"key must be a field name, got {k!r}")
    return keys


def _prepared(data: WriteData, keys: list[str], *, insert_only: bool) -> list[pa.Table]:
    # Everything is checked before the first document is sent (no transactions here).
    return [_prepared_batch(b, keys, insert_only=insert_only) for b in to_arrow_batches(data)]


def _prepared_batch(batch: pa.Table, keys: list[str], *, insert_only: bool) -> pa.Table:
    batch = keyed_batch(batch, keys, insert_only=insert_only, dialect="mongodb")
    for f in batch.schema:
        if f.name.startswith("$") or "\x00" in f.name:
            raise WriteError(f"column {f.name!r} cannot be a MongoDB field name")
        if any(not part for part in f.name.split(".")):
            # '.', 'a.' or 'a..b' name no field path: nothing could read the value back.
            raise InvalidIdentifier(
                f"column {f.name!r} has an empty part between dots; MongoDB reads a dotted "
                "name as a nested field path ('user.age'), so rename it"
            )
    return batch


def _ensure_collection(store: MongoConnection, name: str, keys: list[str]) -> Any:
    store._check_collection_name(name)
    db = store._database()
    if name not in store.tables():
        store._call(lambda d: _create(d, name), f"creating collection {name!r}")
    if keys != ["_id"]:
        # Idempotent: an existing index of the same spec is kept.
        store._call(
            lambda d: d[name].create_index([(k, 1) for k in keys], unique=True, name=KEY_INDEX),
            f"creating the unique index on {keys} of collection {name!r}",
        )
    return db[name]


def _create(db: Any, name: str) -> None:
    # Another writer may create it first: then write into theirs.
    try:
        with contextlib.suppress(CollectionInvalid):
            db.create_collection(name)
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise


def _upsert_op(doc: dict[str, Any], keys: list[str]) -> UpdateOne:
    match = {k: doc.pop(k) for k in keys}
    update = {"$set": doc} if doc else {"$setOnInsert": match}
    return UpdateOne(match, update, upsert=True)


def _documents(batch: pa.Table) -> list[dict[str, Any]]:
    rows = batch.to_pylist()
    convert = [
        f.name
        for f in batch.schema
        if pa.types.is_date(f.type)
        or pa.types.is_time(f.type)
        or pa.types.is_decimal(f.type)
        or pa.types.is_nested(f.type)
    ]
    if convert:
        for row in rows:
            for c in convert:
                row[c] = _bson_value(row[c])
    return rows


def _bson_value(value: Any) -> Any:
    """``value`` as something BSON stores: dates as midnight UTC datetimes, times as text,
    decimals as Decimal128."""
    if isinstance(value, dt.datetime) or value is None:
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    if isinstance(value, list):
        return [_bson_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _bson_value(v) for k, v in value.items()}
    return value


def _undo(coll: Any, docs: list[dict[str, Any]]) -> None:
    ids = [d["_id"] for d in docs]
    if not ids:
        return
    try:
        coll.delete_many({"_id": {"$in": ids}})
    except PyMongoError as exc:  # the original failure matters more; say what is left
        logger.warning("could not remove %d partly inserted document(s): %s", len(ids), exc)
