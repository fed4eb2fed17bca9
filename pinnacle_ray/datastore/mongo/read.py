"""Read one planned MongoDB shard inside a Ray task: a cursor streamed into Arrow tables.

Each task opens its own client (pymongo clients do not survive pickling or ``fork``), runs
``find(shard filter, projection)`` with a cursor batch size matched to the Arrow batch
size, and yields a table every ``batch_rows`` documents or ``batch_bytes`` BSON bytes,
whichever comes first, so a shard is never held whole and a few large documents among
small ones do not make a huge block. Documents arrive raw, so each one's size is exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
import pyarrow as pa
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ...errors import PinnacleError
from .bson_arrow import PlannedColumns, documents_to_table
from .driver_errors import translate

__all__ = ["MongoShard", "client_for"]

SERVER_SELECTION_TIMEOUT_MS = 5_000
_RAW = CodecOptions(document_class=RawBSONDocument)
_DECODE = CodecOptions(tz_aware=False)


def client_for(uri: str) -> MongoClient:
    """A pymongo client for ``uri`` that fails within seconds when no server answers
    (unless the URL sets its own ``serverSelectionTimeoutMS``)."""
    options: dict[str, Any] = {"tz_aware": False}
    lowered = uri.lower()
    if "serverselectiontimeoutms" not in lowered:
        options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
    if "connecttimeoutms" not in lowered:
        options["connectTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
    return MongoClient(uri, **options)


@dataclass
class MongoShard:
    """One key range (or all) of a MongoDB query, readable in any Ray worker."""

    uri: str = field(repr=False)  # holds the password: never shown
    database: str
    collection: str
    filter: dict[str, Any]
    projection: dict[str, Any] | None
    planned: PlannedColumns
    rows: int | None
    label: str
    batch_rows: int = 65_536
    batch_bytes: int = 32 * 1024 * 1024
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def describe(self) -> str:
        return self.label

    def read(self) -> Iterator[pa.Table]:
        client = client_for(self.uri)
        try:
            collection = client[self.database].get_collection(self.collection, codec_options=_RAW)
            cursor = collection.find(
                self.filter, self.projection, batch_size=min(self.batch_rows, 10_000)
            )
            pending: list[Mapping[str, Any]] = []
            pending_bytes = 0
            for raw in cursor:
                size = len(raw.raw)
                if pending and pending_bytes + size > self.batch_bytes:
                    yield documents_to_table(pending, self.planned, self.collection)
                    pending, pending_bytes = [], 0
                pending.append(bson.decode(raw.raw, codec_options=_DECODE))
                pending_bytes += size
                if len(pending) >= self.batch_rows:
                    yield documents_to_table(pending, self.planned, self.collection)
                    pending, pending_bytes = [], 0
            if pending:
                yield documents_to_table(pending, self.planned, self.collection)
        except PinnacleError:
            raise
        except PyMongoError as exc:
            raise translate(
                exc,
                secrets=self.secrets,
                context=f"reading shard {self.label} of collection {self.collection!r}",
            ) from None
        finally:
            client.close()
