"""The MongoDB datastore: one pymongo client, queries over collections, idempotent writes.

It offers the same :class:`~pinnacle_ray.datastore.base.Datastore` protocol as the SQL
datastore, so the model registry, the trainers and prediction work on it unchanged: a
collection plays the part of a table, a field (dotted for nested ones) that of a column.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bson.errors import BSONError
from pymongo.errors import PyMongoError
from sqlalchemy.engine import URL

from ..._internal.secrets import mask
from ...errors import (
    ColumnNotFound,
    ConfigError,
    InvalidIdentifier,
    InvalidURL,
    PinnacleError,
    TableNotFound,
)
from ..bulk import BulkWriter, UpsertWriter, bulk_keys
from ..identifiers import validate_identifier
from ..rows import WriteData
from ..wiring import JobsFactory, JobsT, ModelsFactory, ModelsT, Wired
from .blobs import MongoBlobStore
from .driver_errors import translate
from .query import MongoQuery
from .read import client_for
from .schema import SchemaLike
from .write import KEY_INDEX, delete_documents, insert, match_filter, upsert

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MongoDatastore"]

T = TypeVar("T")


class MongoDatastore(Wired[ModelsT, JobsT]):
    """A MongoDB database reached through pymongo (``mongodb://`` or ``mongodb+srv://``).

    Example::

        store = pr.connect("mongodb://user:pass@db.example.com:27017/shop")
        q = store.find("reviews", filter={"lang": "en"}, projection=["text", "user.age"])
        q = store.table("reviews", columns=["text", "stars"], where={"lang": "en"})
        ds = q.to_dataset()                         # key ranges of _id, read in parallel
        store.write("predictions", rows, key="id")  # idempotent bulk upsert
        store.models.list()                         # the model registry, in collections
    """

    def __init__(
        self,
        uri: str,
        artifact_root: str | os.PathLike[str] | None = None,
        *,
        models: ModelsFactory | None = None,
        jobs: JobsFactory | None = None,
    ) -> None:
        self._uri = uri
        self.database, host, password = _parse(uri)
        self._secrets = (password,) if password else ()
        self.backend = "mongodb"
        place = URL.create("mongodb", host=host, database=self.database)
        self._wire(place, artifact_root, models, jobs)
        try:
            self._client = client_for(uri)
        except PyMongoError as exc:
            raise translate(
                exc, secrets=self._secrets, context=f"connecting to {self.url}"
            ) from None
        except (TypeError, ValueError) as exc:  # bad option values in the URL
            raise InvalidURL(f"cannot use MongoDB URL {self.url!r}: {exc}") from None
        self._call(lambda db: db.command("ping"), f"connecting to {self.url}")

    # -- public --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The connection URL with the password masked."""
        return mask(self._uri)

    def __repr__(self) -> str:
        return f"MongoDatastore({self.url!r})"

    #: How ``validate_identifier`` checks collection names here (MongoDB's limits).
    identifier_dialect = "mongodb"

    def _reopen_args(self) -> tuple[str, str]:
        return (self._uri, self.artifact_root)

    def find(
        self,
        collection: str,
        filter: Mapping[str, Any] | None = None,
        projection: Sequence[str] | Mapping[str, Any] | None = None,
        key: str = "_id",
        schema: SchemaLike | None = None,
    ) -> MongoQuery:
        """Documents of ``collection`` matching ``filter`` (any MongoDB query); ``projection``
        lists the fields to read as columns (dotted for nested ones; default: every
        top-level field); ``key`` (default ``_id``) splits the read into parallel ranges.

        ``schema`` declares column types (a ``pyarrow.Schema`` or ``{field: type or type
        name}``, e.g. ``{"stars": "float64"}``); without a projection its fields are the
        columns. Undeclared types are planned from the first 1,000 documents, and a later
        document of another type fails its read with ``MixedTypes`` (``q.plan()`` says which
        documents the types came from)."""
        return MongoQuery(
            self, collection, filter=filter, projection=projection, key=key, schema=schema
        )

    def table(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        key: str | None = None,
        schema: SchemaLike | None = None,
    ) -> MongoQuery:
        """The documents as rows, as on SQL: ``where`` holds equality (``{f: v}``) or IN
        (``{f: [..]}``) conditions; ``columns`` the fields to read (default: every top-level
        field but ``_id``, as a table's columns, or ``schema``'s fields); ``key`` defaults to
        the field of the collection's unique key index (what ``write(..., key=)`` created),
        else ``_id``; ``schema`` declares column types as on :meth:`find`."""
        self._require_collection(name)
        for field in where or {}:
            self._require_field(name, field, "where")
        if key is None:
            key = self._unique_key(name)
            named = columns if columns is not None else (list(schema) if schema else None)
            if named is not None and key not in named:
                key = None
        return MongoQuery(
            self,
            name,
            filter=match_filter(where or {}),
            projection=columns,
            key=key or "_id",
            include_id=False,
            schema=schema,
        )

    def write(self, name: str, data: WriteData, key: str | Sequence[str]) -> int:
        """Upsert ``data`` (rows, DataFrame, Arrow table or Dataset) into collection ``name``
        by ``key`` with ``bulk_write`` in batches; creates the collection (and a unique index
        on the key) when missing. Returns documents written."""
        return upsert(self, name, data, key)

    def bulk_writer(
        self, name: str, key: str | Sequence[str], shared: pa.Table | None = None
    ) -> BulkWriter:
        """A writer for a large upsert into collection ``name`` by ``key`` from many
        processes (pickle it to them; each writes through its own ``writer.part()``, then
        ``commit()`` here): each part upserts its batches with ``bulk_write`` as they come,
        so a rerun completes a failed one without duplicates. ``shared`` (one row): fields
        holding the same value in every row written (here stored in each document)."""
        self._check_collection_name(name)
        keys = bulk_keys(key)
        for k in keys:
            validate_identifier(k, "key", self.identifier_dialect)
        return UpsertWriter(self, name, keys)

    def insert(self, name: str, data: WriteData, key: str | Sequence[str]) -> int:
        """Insert ``data`` into collection ``name``; raises ``DuplicateKey`` (nothing
        written) when any ``key`` value exists. Returns documents written."""
        return insert(self, name, data, key)

    def delete(self, name: str, where: Mapping[str, Any]) -> int:
        """Delete the documents of ``name`` matching ``where``; returns how many."""
        return delete_documents(self, name, where)

    def blob_store(self) -> MongoBlobStore:
        """Chunked files in this database's GridFS bucket (where model artifacts and Ray
        Train checkpoints are kept by default)."""
        return MongoBlobStore(self)

    def tables(self) -> list[str]:
        """Names of the collections in the database."""
        return sorted(self._call(lambda db: db.list_collection_names(), "listing collections"))

    def drop(self, name: str) -> None:
        """Drop collection ``name`` (nothing happens when it does not exist)."""
        self._check_collection_name(name)
        self._call(lambda db: db.drop_collection(name), f"dropping collection {name!r}")

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # -- internals used by queries and writes ---------------------------------------------
    def _database(self) -> Any:
        return self._client[self.database]

    def _call(self, fn: Callable[[Any], T], context: str) -> T:
        """``fn(database)``, with pymongo's errors turned into pinnacle_ray's."""
        try:
            return fn(self._database())
        except PinnacleError:
            raise
        except (PyMongoError, BSONError, OverflowError) as exc:
            # BSON encoding fails outside pymongo's tree (e.g. an int past 64 bits).
            raise translate(exc, secrets=self._secrets, context=context) from None

    def _has_table(self, name: str) -> bool:
        return name in self.tables()

    def _require_field(self, name: str, field: str, what: str) -> None:
        """``ColumnNotFound`` when documents exist but none has ``field`` (a likely typo)."""
        docs = self._call(
            lambda db: [
                db[name].find_one({field: {"$exists": True}}, {field: 1}),
                db[name].find_one({}),
            ],
            f"looking for field {field!r} in collection {name!r}",
        )
        if docs[0] is None and docs[1] is not None and field.split(".")[0] not in docs[1]:
            raise ColumnNotFound(
                f"{what} names field {field!r}, which no document of collection {name!r} has; "
                f"fields of a document there: {list(docs[1])[:30]}"
            )

    def _unique_key(self, name: str) -> str | None:
        """The one field of ``name``'s unique index (other than ``_id``), if it has one."""
        indexes = self._call(
            lambda db: db[name].index_information(), f"reading the indexes of {name!r}"
        )
        fields = [
            info["key"][0][0]
            for index, info in sorted(indexes.items(), key=lambda i: i[0] != KEY_INDEX)
            if info.get("unique") and len(info["key"]) == 1 and info["key"][0][0] != "_id"
        ]
        return fields[0] if fields else None

    def _check_collection_name(self, name: object) -> str:
        name = validate_identifier(name, "collection name", self.identifier_dialect, table=True)
        if "$" in name or "\x00" in name or name.startswith(("system.", ".")) or name.endswith("."):
            raise InvalidIdentifier(
                f"collection name {name!r} is not allowed in MongoDB (no '$', NUL, leading "
                "'system.' or dot); pick another name"
            )
        return name

    def _require_collection(self, name: str) -> str:
        """``name`` if the collection exists, else ``TableNotFound`` (as a missing SQL table)."""
        self._check_collection_name(name)
        known = self.tables()
        if name not in known:
            raise TableNotFound(
                f"collection {name!r} does not exist in {self.url}; existing collections: "
                f"{known[:20]}"
            )
        return name


def _parse(uri: str) -> tuple[str, str, str | None]:
    """The database, host list and password named in a ``mongodb://`` URL."""
    scheme, _, rest = uri.partition("://")
    if scheme.lower() not in ("mongodb", "mongodb+srv") or not rest:
        raise InvalidURL(
            f"{mask(uri)!r} is not a MongoDB URL; expected "
            "'mongodb://user:password@host:27017/database' or 'mongodb+srv://...'"
        )
    authority, _, path = rest.partition("/")
    credentials, _, hosts = authority.rpartition("@")
    password = None
    if credentials and ":" in credentials:
        password = urllib.parse.unquote(credentials.split(":", 1)[1])
    database = urllib.parse.unquote(path.split("?", 1)[0])
    if not hosts:
        raise InvalidURL(f"MongoDB URL {mask(uri)!r} names no host")
    if not database:
        raise InvalidURL(
            f"MongoDB URL {mask(uri)!r} names no database; add it after the host, e.g. "
            "'mongodb://host:27017/shop'"
        )
    if any(c in database for c in '/\\. "$'):
        raise ConfigError(f"MongoDB database name {database!r} has a character MongoDB refuses")
    return database, hosts.split(",")[0], password
