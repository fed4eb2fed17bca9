"""Files kept inside the database itself, in chunks: what a blob store offers and how it streams.

Server stores (PostgreSQL, MariaDB/MySQL, MongoDB) keep registered models and Ray Train
checkpoints in the database by default, so a cluster needs nothing but Ray and the database.
A blob store is a flat set of ``/``-separated paths, each a file (bytes in numbered chunks)
or an explicit directory marker. Both directions stream one chunk at a time: a reader holds
at most one chunk, a writer buffers at most one before it is stored. A file becomes visible
only when its writer closes (its chunks are stored under a fresh id first, then one commit
points the path at them), so a crashed or aborted writer leaves nothing a reader can see.

The SQL store lives in :mod:`.sql.blobs`, the GridFS one in :mod:`.mongo.blobs`; the
``pyarrow.fs`` filesystem over either is ``pinnacle_ray.registry.db_filesystem``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_CHUNK_BYTES", "BlobInfo", "BlobStore", "ChunkReader", "ChunkWriter"]

# 4 MiB: large enough that per-statement overhead is small next to the transfer, small
# enough for MariaDB's default 16 MiB max_allowed_packet (escaped) and MongoDB's 16 MiB
# document limit.
DEFAULT_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class BlobInfo:
    """One entry of a blob store: a file (``size`` bytes) or a directory marker."""

    path: str
    size: int
    mtime_ns: int
    is_dir: bool = False


class BlobStore(Protocol):
    """Chunked files inside a datastore (``store.blob_store()``); paths have no leading ``/``.

    Example::

        blobs = pr.connect("postgresql+psycopg://db/shop").blob_store()
        with blobs.open_write("models/mlp/weights.bin") as out:   # visible once closed
            out.write(b"...")
        with blobs.open_read("models/mlp/weights.bin") as f:
            f.seek(10); f.read(4)
    """

    chunk_bytes: int

    def stat(self, path: str) -> BlobInfo | None:
        """The entry at exactly ``path``, or None."""
        ...

    def list(self, prefix: str) -> list[BlobInfo]:
        """Every entry strictly below folder ``prefix`` (all entries when ``prefix`` is "")."""
        ...

    def open_read(self, path: str) -> io.RawIOBase:
        """A seekable reader of file ``path``; ``FileNotFoundError`` when there is none."""
        ...

    def open_write(self, path: str) -> ChunkWriter:
        """A writer that replaces file ``path`` when closed (``abort()`` drops it instead)."""
        ...

    def make_dir(self, path: str) -> None:
        """Record ``path`` as an (empty) directory."""
        ...

    def delete(self, paths: Sequence[str]) -> int:
        """Remove these entries (files with their chunks, markers); how many were removed."""
        ...

    def rename(self, source: str, target: str) -> None:
        """Give entry ``source`` the path ``target``, replacing what was there, in one step."""
        ...

    def remove_orphans(self, older_than_s: float) -> int:
        """Delete the chunks of writes that never committed (a killed writer) and are older
        than ``older_than_s`` seconds; how many unfinished files were removed."""
        ...


def below(prefix: str, path: str) -> bool:
    """Whether ``path`` lies strictly inside folder ``prefix`` ("" is the root)."""
    return path.startswith(prefix + "/") if prefix else bool(path)


class ChunkReader(io.RawIOBase):
    """A seekable reader over numbered chunks that keeps only the current chunk in memory.

    ``fetch(n)`` returns chunk ``n``; every chunk but the last is ``chunk_bytes`` long.
    """

    def __init__(self, size: int, chunk_bytes: int, fetch: Callable[[int], bytes]) -> None:
        super().__init__()
        self._size = size
        self._chunk_bytes = chunk_bytes
        self._fetch = fetch
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        """The file's length in bytes."""
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"cannot seek to {base + offset}: before the start of the file")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            n, offset = divmod(self._pos, self._chunk_bytes)
            chunk = self._chunk(n)
            piece = chunk[offset : offset + len(view) - done]
            if not piece:
                raise OSError(
                    f"blob chunk {n} is shorter than recorded (file size {self._size}); the "
                    "stored file is damaged"
                )
            view[done : done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done

    def read(self, size: int = -1) -> bytes:
        # RawIOBase.read(-1) would gather the whole file; a caller asking for everything
        # gets it in one bytes object only because it asked to.
        if size is None or size < 0:
            size = max(self._size - self._pos, 0)
        out = bytearray(min(size, max(self._size - self._pos, 0)))
        got = self.readinto(out)
        return bytes(out[:got])

    def _chunk(self, n: int) -> bytes:
        if self._cached is None or self._cached[0] != n:
            self._cached = None  # release the previous chunk before fetching the next
            self._cached = (n, self._fetch(n))
        return self._cached[1]

    def close(self) -> None:
        self._cached = None
        super().close()


class ChunkWriter(io.RawIOBase):
    """A writer that stores full chunks as they fill and publishes the file on ``close()``.

    ``put(n, data)`` stores chunk ``n``; ``commit(size)`` makes the file visible in one step;
    ``discard()`` removes stored chunks. A writer dropped or ``abort()``-ed publishes nothing.
    """

    def __init__(
        self,
        chunk_bytes: int,
        put: Callable[[int, bytes], None],
        commit: Callable[[int], None],
        discard: Callable[[], None],
        content_id: object = None,
    ) -> None:
        super().__init__()
        self.content_id = content_id  # where the chunks go, for diagnostics and tests
        self._chunk_bytes = chunk_bytes
        self._put = put
        self._commit = commit
        self._discard = discard
        self._buffer = bytearray()
        self._count = 0
        self._size = 0
        self._aborted = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed blob writer")
        view = memoryview(data).cast("B")
        taken = 0
        while taken < len(view):
            room = self._chunk_bytes - len(self._buffer)
            self._buffer += view[taken : taken + room]
            taken += min(room, len(view) - taken)
            if len(self._buffer) == self._chunk_bytes:
                self._flush_chunk()
        self._size += taken
        return taken

    def _flush_chunk(self) -> None:
        try:
            self._put(self._count, bytes(self._buffer))
        except BaseException:
            self.abort()
            raise
        self._count += 1
        self._buffer = bytearray()

    def abort(self) -> None:
        """Drop what was written: the file is not published and its chunks are removed."""
        if self._aborted:
            return
        self._aborted = True
        self._buffer = bytearray()
        try:
            self._discard()
        finally:
            super().close()

    def close(self) -> None:
        if self.closed or self._aborted:
            return
        try:
            if self._buffer:
                self._flush_chunk()
            self._commit(self._size)
        except BaseException:
            self.abort()
            raise
        super().close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Leaving a ``with`` block by an exception must not publish what was written so far.
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A writer garbage-collected without close() (its process is exiting, or its owner
        # forgot it) must not publish a partial file: drop it instead of RawIOBase's close().
        if not self.closed and not self._aborted:
            with contextlib.suppress(Exception):  # best effort at interpreter exit
                self.abort()
