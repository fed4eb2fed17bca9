"""Chunked files in a SQL database: a file table and a chunk table, created on first use.

``pinnacle_blob_files`` maps a path to the id of its current content (size, mtime, or a
directory marker); ``pinnacle_blob_chunks`` holds that content as numbered chunks (bytea on
PostgreSQL, LONGBLOB on MariaDB/MySQL, BLOB elsewhere). A writer stores chunks under a
fresh id, one statement per chunk, and only its closing transaction points the path at
them, so readers never see a half-written file; the replaced content is deleted in that
same transaction. Paths compare byte for byte (``utf8mb4_bin`` on MariaDB, ``"C"`` on
PostgreSQL), as file names do.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from ...errors import ConfigError
from ..blobs import DEFAULT_CHUNK_BYTES, BlobInfo, ChunkReader, ChunkWriter, below

if TYPE_CHECKING:
    from .connection import SqlConnection

__all__ = ["CHUNKS_TABLE", "FILES_TABLE", "SqlBlobStore"]

logger = logging.getLogger("pinnacle_ray.datastore")

FILES_TABLE = "pinnacle_blob_files"
CHUNKS_TABLE = "pinnacle_blob_chunks"
MAX_PATH_CHARS = 700  # under InnoDB's 3072-byte key limit at 4 bytes a character

_PATH = (
    sa.String(MAX_PATH_CHARS)
    .with_variant(mysql.VARCHAR(MAX_PATH_CHARS, collation="utf8mb4_bin"), "mysql", "mariadb")
    .with_variant(postgresql.VARCHAR(MAX_PATH_CHARS, collation="C"), "postgresql")
)
_BYTES = (
    sa.LargeBinary()
    .with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    .with_variant(postgresql.BYTEA(), "postgresql")
)

_meta = sa.MetaData()
_files = sa.Table(
    FILES_TABLE,
    _meta,
    sa.Column("path", _PATH, primary_key=True),
    sa.Column("content_id", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("chunk_bytes", sa.Integer, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("is_dir", sa.Boolean, nullable=False),
)
_chunks = sa.Table(
    CHUNKS_TABLE,
    _meta,
    sa.Column("content_id", sa.String(32), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", _BYTES, nullable=False),
)

_PG_SELECT = f"SELECT data FROM {CHUNKS_TABLE} WHERE content_id = %s AND n = %s"
_PG_INSERT = f"INSERT INTO {CHUNKS_TABLE} (content_id, n, data) VALUES (%s, %s, %b)"


class SqlBlobStore:
    """Files in the tables of a SQL datastore (``store.blob_store()``), streamed in chunks.

    Pickles as its datastore (which reconnects from its URL), so a Ray worker that receives
    it reaches the same database.
    """

    def __init__(self, store: SqlConnection, chunk_bytes: int | None = None) -> None:
        self._store = store
        self._requested_chunk = chunk_bytes
        if chunk_bytes is not None and (not isinstance(chunk_bytes, int) or chunk_bytes < 1):
            raise ConfigError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
        self._chunk_bytes: int | None = None
        self._ready = False

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return SqlBlobStore, (self._store, self._requested_chunk)

    def __repr__(self) -> str:
        return f"SqlBlobStore({self._store.url!r})"

    @property
    def chunk_bytes(self) -> int:
        """Bytes per stored chunk: 4 MiB, less where the server's packet limit is smaller."""
        if self._chunk_bytes is None:
            size = self._requested_chunk or DEFAULT_CHUNK_BYTES
            if self._store.backend in ("mysql", "mariadb"):
                packet = self._store._scalar(
                    sa.text("SELECT @@max_allowed_packet"), "reading max_allowed_packet"
                )
                # Escaped binary can double in size on the wire; keep room for the statement.
                size = min(size, max(int(packet) // 2 - (64 << 10), 64 << 10))
            self._chunk_bytes = size
        return self._chunk_bytes

    # -- reading ---------------------------------------------------------------------------
    def stat(self, path: str) -> BlobInfo | None:
        self._ensure()
        with self._store._errors(f"looking up blob {path!r}"), self._engine.connect() as conn:
            row = conn.execute(_select_info().where(_files.c.path == path)).first()
        return _info(row) if row is not None else None

    def list(self, prefix: str) -> list[BlobInfo]:
        self._ensure()
        stmt = _select_info()
        if prefix:
            stmt = stmt.where(_files.c.path.startswith(prefix + "/", autoescape=True))
        with self._store._errors(f"listing blobs under {prefix!r}"), self._engine.connect() as c:
            rows = c.execute(stmt.order_by(_files.c.path)).all()
        return [_info(r) for r in rows if below(prefix, r.path)]

    def open_read(self, path: str) -> ChunkReader:
        self._ensure()
        stmt = sa.select(_files.c.content_id, _files.c.size, _files.c.chunk_bytes, _files.c.is_dir)
        with self._store._errors(f"opening blob {path!r}"), self._engine.connect() as conn:
            row = conn.execute(stmt.where(_files.c.path == path)).first()
        if row is None or row.is_dir:
            raise FileNotFoundError(f"no file {path!r} in the database's blob store")
        content_id = row.content_id

        def fetch(n: int) -> bytes:
            with self._store._errors(f"reading blob {path!r}"), self._engine.connect() as conn:
                data = self._get_chunk(conn, content_id, n)
            if data is None:
                raise FileNotFoundError(
                    f"blob {path!r} was replaced or deleted while it was being read"
                )
            return bytes(data)

        return ChunkReader(int(row.size), int(row.chunk_bytes), fetch)

    # -- writing ---------------------------------------------------------------------------
    def open_write(self, path: str) -> ChunkWriter:
        self._ensure()
        _check_path(path)
        # Time first: remove_orphans() tells a dead writer's chunks from a live one's by it.
        content_id = f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"
        chunk_bytes = self.chunk_bytes

        def put(n: int, data: bytes) -> None:
            with self._store._errors(f"writing blob {path!r}"), self._engine.begin() as conn:
                self._put_chunk(conn, content_id, n, data)

        def commit(size: int) -> None:
            row = {
                "path": path,
                "content_id": content_id,
                "size": size,
                "chunk_bytes": chunk_bytes,
                "mtime_ns": time.time_ns(),
                "is_dir": False,
            }
            self._replace(path, row, f"publishing blob {path!r}")

        def discard() -> None:
            with self._store._errors(f"discarding blob {path!r}"), self._engine.begin() as conn:
                conn.execute(_chunks.delete().where(_chunks.c.content_id == content_id))

        return ChunkWriter(chunk_bytes, put, commit, discard, content_id)

    def make_dir(self, path: str) -> None:
        self._ensure()
        _check_path(path)
        row = {
            "path": path,
            "content_id": "",
            "size": 0,
            "chunk_bytes": 0,
            "mtime_ns": time.time_ns(),
            "is_dir": True,
        }
        self._replace(path, row, f"creating blob folder {path!r}")

    def delete(self, paths: Sequence[str]) -> int:
        self._ensure()
        removed = 0
        with self._store._errors("deleting blobs"), self._engine.begin() as conn:
            for start in range(0, len(paths), 500):
                batch = list(paths[start : start + 500])
                ids = conn.execute(
                    sa.select(_files.c.content_id).where(_files.c.path.in_(batch))
                ).scalars()
                ids = [i for i in ids if i]
                removed += conn.execute(_files.delete().where(_files.c.path.in_(batch))).rowcount
                if ids:
                    conn.execute(_chunks.delete().where(_chunks.c.content_id.in_(ids)))
        return removed

    def rename(self, source: str, target: str) -> None:
        self._ensure()
        _check_path(target)
        with self._store._errors(f"renaming blob {source!r}"), self._engine.begin() as conn:
            found = conn.execute(sa.select(_files.c.path).where(_files.c.path == source)).first()
            if found is None:
                raise FileNotFoundError(f"no entry {source!r} in the database's blob store")
            self._drop(conn, target)
            conn.execute(_files.update().where(_files.c.path == source).values(path=target))

    def remove_orphans(self, older_than_s: float) -> int:
        """Delete chunks that no file points at and that were started more than
        ``older_than_s`` seconds ago (a writer killed before its commit); how many files'
        chunks were removed. Younger ones may belong to a live writer and stay."""
        self._ensure()
        cutoff = time.time_ns() - int(older_than_s * 1e9)
        known = sa.select(_files.c.content_id)
        stmt = sa.select(_chunks.c.content_id).where(_chunks.c.content_id.not_in(known)).distinct()
        with self._store._errors("listing orphan blob chunks"), self._engine.connect() as conn:
            ids = list(conn.execute(stmt).scalars())
        stale = [i for i in ids if _started_ns(i) < cutoff]
        with self._store._errors("removing orphan blob chunks"), self._engine.begin() as conn:
            for start in range(0, len(stale), 500):
                batch = stale[start : start + 500]
                conn.execute(_chunks.delete().where(_chunks.c.content_id.in_(batch)))
        return len(stale)

    # -- internals -------------------------------------------------------------------------
    @property
    def _engine(self) -> sa.Engine:
        return self._store._engine

    def _replace(self, path: str, row: dict[str, Any], context: str) -> None:
        """Point ``path`` at ``row`` in one transaction, dropping what it pointed at before.
        A concurrent writer of the same path may win the insert: then try once more."""
        for attempt in range(2):
            try:
                with self._store._errors(context), self._engine.begin() as conn:
                    self._drop(conn, path)
                    conn.execute(_files.insert().values(**row))
                return
            except Exception:
                if attempt == 1:
                    raise

    def _get_chunk(self, conn: sa.Connection, content_id: str, n: int) -> bytes | None:
        if self._store.backend == "postgresql":
            # Binary results: bytea as text (hex) doubles the bytes and costs a decode (3x
            # slower measured); SQLAlchemy has no switch for psycopg's binary cursors.
            cursor = conn.connection.driver_connection.cursor(binary=True)
            try:
                cursor.execute(_PG_SELECT, (content_id, n))
                row = cursor.fetchone()
            finally:
                cursor.close()
        else:
            query = sa.select(_chunks.c.data).where(
                _chunks.c.content_id == content_id, _chunks.c.n == n
            )
            row = conn.execute(query).first()
        return None if row is None else bytes(row[0])

    def _put_chunk(self, conn: sa.Connection, content_id: str, n: int, data: bytes) -> None:
        if self._store.backend == "postgresql":
            # %b sends the chunk as a binary parameter, not escaped text.
            cursor = conn.connection.driver_connection.cursor()
            try:
                cursor.execute(_PG_INSERT, (content_id, n, data))
            finally:
                cursor.close()
        else:
            conn.execute(_chunks.insert().values(content_id=content_id, n=n, data=data))

    @staticmethod
    def _drop(conn: sa.Connection, path: str) -> None:
        old = conn.execute(sa.select(_files.c.content_id).where(_files.c.path == path)).scalar()
        if old is None:
            return
        conn.execute(_files.delete().where(_files.c.path == path))
        if old:
            conn.execute(_chunks.delete().where(_chunks.c.content_id == old))

    def _ensure(self) -> None:
        """Create the two tables on first use (concurrent creators are fine)."""
        if self._ready:
            return
        with self._store._errors("creating the blob tables"):
            try:
                _meta.create_all(self._engine, checkfirst=True)
            except sa.exc.DBAPIError:
                # Another process created them between the check and the CREATE.
                if not sa.inspect(self._engine).has_table(CHUNKS_TABLE):
                    raise
        self._ready = True


def _started_ns(content_id: str) -> int:
    try:
        return int(content_id[:16], 16)
    except ValueError:
        return 0  # not ours to date: old enough


def _select_info() -> sa.Select:
    return sa.select(_files.c.path, _files.c.size, _files.c.mtime_ns, _files.c.is_dir)


def _info(row: Any) -> BlobInfo:
    return BlobInfo(row.path, int(row.size), int(row.mtime_ns), bool(row.is_dir))


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not path or path.startswith("/") or len(path) > MAX_PATH_CHARS:
        raise ConfigError(
            f"blob path {path!r} must be a non-empty relative path of at most "
            f"{MAX_PATH_CHARS} characters (no leading '/'); shorten the run or model name"
        )
