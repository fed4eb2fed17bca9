"""Chunked files in MongoDB through GridFS (the ``pinnacle_blobs`` bucket).

GridFS (pymongo's ``GridFSBucket``) writes: it streams in chunks and inserts a file's
``files`` document only after all its chunks, so a file is invisible until complete. Reads
fetch one chunk document at a time from the standard GridFS layout, so a reader holds one
chunk. A path is the GridFS ``filename``; writing a path again adds a revision and then
removes the older ones, so readers always see one complete version. Directory markers are
empty files with ``metadata.dir`` set.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .blobs import DEFAULT_CHUNK_BYTES, BlobInfo, ChunkReader, ChunkWriter, below

if TYPE_CHECKING:
    from .mongo import MongoDatastore

__all__ = ["BUCKET", "MongoBlobStore"]

BUCKET = "pinnacle_blobs"
T = TypeVar("T")


class MongoBlobStore:
    """Files in a MongoDB database's GridFS bucket (``store.blob_store()``).

    Pickles as its datastore (which reconnects from its URI), so a Ray worker that receives
    it reaches the same database.
    """

    def __init__(self, store: MongoDatastore, chunk_bytes: int | None = None) -> None:
        self._store = store
        self._requested_chunk = chunk_bytes
        self.chunk_bytes = chunk_bytes or DEFAULT_CHUNK_BYTES

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
        import gridfs

        def remove(db: Any) -> int:
            bucket = gridfs.GridFSBucket(db, BUCKET)
            ids = [
                d["_id"]
                for d in db[f"{BUCKET}.files"].find({"filename": {"$in": list(paths)}}, {"_id": 1})
            ]
            for file_id in ids:
                with contextlib.suppress(gridfs.errors.NoFile):  # removed concurrently
                    bucket.delete(file_id)
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

    # -- internals -------------------------------------------------------------------------
    def _writer(self, path: str, metadata: dict[str, Any] | None) -> ChunkWriter:
        import gridfs

        stream = self._call(
            lambda db: gridfs.GridFSBucket(db, BUCKET).open_upload_stream(
                path, chunk_size_bytes=self.chunk_bytes, metadata=metadata
            ),
            f"opening blob {path!r} for writing",
        )

        def put(_n: int, data: bytes) -> None:
            self._call(lambda _db: stream.write(data), f"writing blob {path!r}")

        def commit(_size: int) -> None:
            self._call(lambda _db: stream.close(), f"publishing blob {path!r}")
            # Older revisions of the path go only now that the new one is complete.
            self._call(
                lambda db: _delete_ids(
                    db,
                    [
                        d["_id"]
                        for d in db[f"{BUCKET}.files"].find(
                            {"filename": path, "_id": {"$ne": stream._id}}, {"_id": 1}
                        )
                    ],
                ),
                f"replacing blob {path!r}",
            )

        def discard() -> None:
            self._call(lambda _db: stream.abort(), f"discarding blob {path!r}")

        return ChunkWriter(self.chunk_bytes, put, commit, discard, stream._id)

    def _call(self, fn: Callable[[Any], T], context: str) -> T:
        return self._store._call(fn, context)


def _delete_ids(db: Any, ids: list[Any]) -> None:
    if ids:
        db[f"{BUCKET}.chunks"].delete_many({"files_id": {"$in": ids}})
        db[f"{BUCKET}.files"].delete_many({"_id": {"$in": ids}})


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
