"""Chunked files in MongoDB, in GridFS's layout (the ``pinnacle_blobs`` bucket).

Files are stored as GridFS stores them (``<bucket>.files`` and ``<bucket>.chunks``, readable
by ``gridfs.GridFSBucket`` and ``mongofiles``), one chunk document per insert and per read,
so neither side holds more than a chunk. A file's ``files`` document is inserted only after
all its chunks, so a file is invisible until complete. A path is the GridFS ``filename``;
writing a path again adds a revision and then removes the older ones, so readers always
see one complete version. Directory markers are empty files with ``metadata.dir`` set.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bson import Binary, ObjectId

from ..blobs import DEFAULT_CHUNK_BYTES, BlobInfo, ChunkReader, ChunkWriter, below

if TYPE_CHECKING:
    from .connection import MongoConnection

__all__ = ["BUCKET", "MongoBlobStore"]

BUCKET = "pinnacle_blobs"
T = TypeVar("T")


class MongoBlobStore:
    """Files in a MongoDB database's GridFS bucket (``store.blob_store()``).

    Pickles as its datastore (which reconnects from its URI), so a Ray worker that receives
    it reaches the same database.
    """

    def __init__(self, store: MongoConnection, chunk_bytes: int | None = None) -> None:
        self._store = store
        self._requested_chunk = chunk_bytes
        self.chunk_bytes = chunk_bytes or DEFAULT_CHUNK_BYTES
        self._indexed = False

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return MongoBlobStore, (self._store, self._requested_chunk)

    def __repr__(self) -> str:
        return f"MongoBlobStore({self._store.url!r})"

    def stat(self, path: str) -> BlobInfo | None:
        doc = self._call(
            lambda db: db[f"{BUCKET}.files"].find_one(
                {"filename": path}, sort=[("uploadDate", -1), ("_id", -1)]
            ),
            f"looking up blob {path!r}",
        )
        return _info(doc) if doc is not None else None

    def list(self, prefix: str) -> list[BlobInfo]:
        query = {"filename": {"$regex": "^" + re.escape(prefix + "/")}} if prefix else {}
        docs = self._call(
            lambda db: list(
                db[f"{BUCKET}.files"].find(
                    query, {"filename": 1, "length": 1, "uploadDate": 1, "metadata": 1}
                )
            ),
            f"listing blobs under {prefix!r}",
        )
        newest: dict[str, dict[str, Any]] = {}
        for doc in docs:  # one entry per path: its newest revision
            seen = newest.get(doc["filename"])
            if seen is None or (doc["uploadDate"], doc["_id"]) > (seen["uploadDate"], seen["_id"]):
                newest[doc["filename"]] = doc
        return [_info(d) for p, d in sorted(newest.items()) if below(prefix, p)]

    def open_read(self, path: str) -> ChunkReader:
        doc = self._call(
            lambda db: db[f"{BUCKET}.files"].find_one(
                {"filename": path}, sort=[("uploadDate", -1), ("_id", -1)]
            ),
            f"opening blob {path!r}",
        )
        if doc is None or (doc.get("metadata") or {}).get("dir"):
            raise FileNotFoundError(f"no file {path!r} in the database's GridFS bucket {BUCKET!r}")
        file_id = doc["_id"]

        # One chunk document per request: a cursor over the chunks would let the server
        # send (and the driver hold) a whole batch of them at once.
        def fetch(n: int) -> bytes:
            chunk = self._call(
                lambda db: db[f"{BUCKET}.chunks"].find_one({"files_id": file_id, "n": n}),
                f"reading blob {path!r}",
            )
            if chunk is None:
                raise FileNotFoundError(
                    f"blob {path!r} was replaced or deleted while it was being read"
                )
            return bytes(chunk["data"])

        return ChunkReader(int(doc["length"]), int(doc["chunkSize"]), fetch)

    def open_write(self, path: str) -> ChunkWriter:
        return self._writer(path, None)

    def make_dir(self, path: str) -> None:
        self._writer(path, {"dir": True}).close()

    def delete(self, paths: Sequence[str]) -> int:
        def remove(db: Any) -> int:
            files = db[f"{BUCKET}.files"]
            ids = [d["_id"] for d in files.find({"filename": {"$in": list(paths)}}, {"_id": 1})]
            _delete_ids(db, ids)
            return len(ids)

        return self._call(remove, "deleting blobs")

    def rename(self, source: str, target: str) -> None:
        def move(db: Any) -> None:
            files = db[f"{BUCKET}.files"]
            current = files.find_one({"filename": source}, sort=[("uploadDate", -1), ("_id", -1)])
            if current is None:
                raise FileNotFoundError(f"no entry {source!r} in the GridFS bucket {BUCKET!r}")
            old = [d["_id"] for d in files.find({"filename": target}, {"_id": 1})]
            files.update_one({"_id": current["_id"]}, {"$set": {"filename": target}})
            _delete_ids(db, old)
            _delete_ids(db, [d["_id"] for d in files.find({"filename": source}, {"_id": 1})])

        self._call(move, f"renaming blob {source!r}")

    def remove_orphans(self, older_than_s: float) -> int:
        """Delete chunks whose file document never came (a writer killed before closing)
        and that are older than ``older_than_s`` seconds; how many files' chunks went."""
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=older_than_s)

        def sweep(db: Any) -> int:
            files = {d["_id"] for d in db[f"{BUCKET}.files"].find({}, {"_id": 1})}
            chunk_ids = {d["files_id"] for d in db[f"{BUCKET}.chunks"].find({}, {"files_id": 1})}
            # GridFS file ids are ObjectIds, which carry their creation time.
            stale = [i for i in chunk_ids - files if getattr(i, "generation_time", cutoff) < cutoff]
            if stale:
                db[f"{BUCKET}.chunks"].delete_many({"files_id": {"$in": stale}})
            return len(stale)

        return self._call(sweep, "removing orphan blob chunks")

    # -- internals -------------------------------------------------------------------------
    def _writer(self, path: str, metadata: dict[str, Any] | None) -> ChunkWriter:
        # GridFS's own GridIn batches up to 48 MB of chunks in memory before inserting
        # them; this writes the same documents one chunk at a time instead.
        file_id = ObjectId()
        self._ensure_indexes()

        def put(n: int, data: bytes) -> None:
            self._call(
                lambda db: db[f"{BUCKET}.chunks"].insert_one(
                    {"files_id": file_id, "n": n, "data": Binary(data)}
                ),
                f"writing blob {path!r}",
            )

        def commit(size: int) -> None:
            doc = {
                "_id": file_id,
                "length": size,
                "chunkSize": self.chunk_bytes,
                "uploadDate": _now_ms(),
                "filename": path,
            }
            if metadata:
                doc["metadata"] = metadata
            self._call(lambda db: db[f"{BUCKET}.files"].insert_one(doc), f"publishing {path!r}")
            # Older revisions of the path go only now that the new one is complete.
            self._call(
                lambda db: _delete_ids(
                    db,
                    [
                        d["_id"]
                        for d in db[f"{BUCKET}.files"].find(
                            {"filename": path, "_id": {"$ne": file_id}}, {"_id": 1}
                        )
                    ],
                ),
                f"replacing blob {path!r}",
            )

        def discard() -> None:
            self._call(
                lambda db: db[f"{BUCKET}.chunks"].delete_many({"files_id": file_id}),
                f"discarding blob {path!r}",
            )

        return ChunkWriter(self.chunk_bytes, put, commit, discard, file_id)

    def _ensure_indexes(self) -> None:
        """GridFS's standard indexes, once per store object (creating them is idempotent)."""
        if self._indexed:
            return

        def create(db: Any) -> None:
            db[f"{BUCKET}.files"].create_index([("filename", 1), ("uploadDate", 1)])
            db[f"{BUCKET}.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)

        self._call(create, "creating the GridFS indexes")
        self._indexed = True

    def _call(self, fn: Callable[[Any], T], context: str) -> T:
        return self._store._call(fn, context)


def _now_ms() -> dt.datetime:
    # BSON dates keep milliseconds; GridFS orders revisions by uploadDate.
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _delete_ids(db: Any, ids: list[Any]) -> None:
    if ids:  # the file documents first: readers stop seeing them before chunks go
        db[f"{BUCKET}.files"].delete_many({"_id": {"$in": ids}})
        db[f"{BUCKET}.chunks"].delete_many({"files_id": {"$in": ids}})


def _info(doc: dict[str, Any]) -> BlobInfo:
    uploaded: dt.datetime = doc["uploadDate"]
    if uploaded.tzinfo is None:
        uploaded = uploaded.replace(tzinfo=dt.timezone.utc)
    return BlobInfo(
        doc["filename"],
        int(doc.get("length", 0)),
        int(uploaded.timestamp() * 1e9),
        bool((doc.get("metadata") or {}).get("dir")),
    )
