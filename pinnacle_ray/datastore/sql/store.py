"""The SQL datastore: one SQLAlchemy engine, queries over it, and idempotent writes."""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL

from ..._internal.constants import sql_reader
from ..._internal.extras import installed, needs_extra
from ..._internal.secrets import mask
from ...errors import (
    ConfigError,
    DatastoreConnectionError,
    InvalidURL,
    MissingExtra,
    TableNotFound,
)
from ..bulk import BulkWriter, UpsertWriter, bulk_keys
from ..identifiers import validate_identifier
from ..rows import WriteData
from ..shards import is_local_host
from ..wiring import JobsFactory, JobsT, ModelsFactory, ModelsT, Wired
from .blobs import SqlBlobStore
from .driver_errors import translate
from .query import SqlQuery, _CtidPages
from .read import Compiled, via_settings
from .reflect import reflect_table
from .sqlite import connectorx_read
from .write import delete_rows, upsert
from .write import insert as insert_rows

__all__ = ["SqlDatastore"]

logger = logging.getLogger("pinnacle_ray.datastore")

CONNECT_TIMEOUT_S = 5
# PINNACLE_RAY_SQL_READER=dbapi forces the general reader; =adbc keeps SQLite reads off
# connectorx (the tests read every way).


class SqlDatastore(Wired[ModelsT, JobsT]):
    """A SQL database reached through SQLAlchemy: SQLite, PostgreSQL, MariaDB/MySQL, ...

    Example::

        store = pr.connect("sqlite:///shop.db")
        q = store.table("houses", where={"split": "train"})   # key: the primary key
        ds = q.to_dataset()                                    # parallel shard reads
        store.write("predictions", rows, key="id")             # idempotent upsert
        store.models.list()                                    # the model registry
    """

    def __init__(
        self,
        url: URL,
        artifact_root: str | os.PathLike[str] | None = None,
        sqlite_wal: bool | None = None,
        *,
        models: ModelsFactory | None = None,
        jobs: JobsFactory | None = None,
    ) -> None:
        if sqlite_wal not in (None, True, False):
            raise ConfigError(f"sqlite_wal={sqlite_wal!r}; pass True, False or None (the default)")
        if sqlite_wal is not None and url.get_backend_name() != "sqlite":
            raise ConfigError(
                f"sqlite_wal={sqlite_wal!r} applies to SQLite files only, not to "
                f"{url.get_backend_name()}; leave it out"
            )
        self._url = url
        self._wire(url, artifact_root, models, jobs)
        self.backend = url.get_backend_name()
        self.is_memory = self.backend == "sqlite" and url.database in (None, "", ":memory:")
        self._secrets = (url.password,) if url.password else ()
        try:
            with needs_extra(purpose=f"a {url.drivername} datastore"):
                self._engine = sa.create_engine(url, **_engine_options(url))
        except MissingExtra:
            raise
        except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
            raise InvalidURL(
                f"cannot use datastore URL {mask(url)!r}: {exc}. Install the driver or use "
                "a supported one (sqlite, postgresql+psycopg, mysql+pymysql)"
            ) from None
        if self.backend == "sqlite" and not self.is_memory:
            folder = Path(url.database or "").expanduser().resolve().parent
            if not folder.is_dir():
                raise DatastoreConnectionError(
                    f"cannot create SQLite file {url.database!r}: folder {str(folder)!r} does "
                    "not exist; create it or fix the path"
                )
            # WAL stays in the file for good, so it is switched on only in a file this
            # connection creates, or when asked; a user's file keeps its journal mode.
            path = Path(url.database or "").expanduser()
            created = not path.exists() or path.stat().st_size == 0
            wal = sqlite_wal if sqlite_wal is not None else created
            sa.event.listen(self._engine, "connect", functools.partial(_sqlite_pragmas, wal=wal))
        with self._errors(f"connecting to {self.url}"), self._engine.connect():
            pass

    # -- public --------------------------------------------------------------------------
    @property
    def identifier_dialect(self) -> str:
        """How ``validate_identifier`` checks table and column names here: the SQLAlchemy
        dialect's name (each backend has its own length limit)."""
        return str(self._engine.dialect.name)

    @property
    def url(self) -> str:
        """The connection URL with the password masked."""
        return mask(self._url)

    def __repr__(self) -> str:
        return f"SqlDatastore({self.url!r})"

    def _reopen_args(self) -> tuple[URL, str]:
        return (self._url, self.artifact_root)

    def table(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> SqlQuery:
        """Rows of table ``name``; ``key`` (default: the primary key) splits parallel reads."""
        return SqlQuery(self, table=name, columns=columns, where=where, key=key)

    def sql(
        self, text: str, params: Mapping[str, Any] | None = None, key: str | None = None
    ) -> SqlQuery:
        """Rows of a SELECT; ``:name`` placeholders bind ``params``; ``key`` splits the read."""
        return SqlQuery(self, text=text, params=params, key=key)

    def write(self, name: str, data: WriteData, key: str | Sequence[str]) -> int:
        """Upsert ``data`` (rows, DataFrame, Arrow table or Dataset) into table ``name`` by
        ``key`` in one transaction; creates the table when missing. Returns rows written."""
        return upsert(self, name, data, key)

    def bulk_writer(
        self, name: str, key: str | Sequence[str], shared: pa.Table | None = None
    ) -> BulkWriter:
        """A writer for a large upsert into table ``name`` by ``key`` from many processes
        (pickle it to them; each writes through its own ``writer.part()``, then
        ``commit()`` here). A SQLite file stages each part's rows in a file of its own and
        merges them all at the commit, in one transaction (a failed run writes nothing);
        other databases upsert each batch as it comes (PostgreSQL by binary COPY, each
        process through one connection and staging table it keeps). ``shared`` (one row):
        columns holding the same value in every row written.

        Example::

            with store.bulk_writer("predictions", key=["id", "model"]) as writer:
                part = writer.part()              # in each process
                part.write(arrow_table)
        """
        validate_identifier(name, "table name", self.identifier_dialect, table=True)
        keys = bulk_keys(key)
        for k in keys:
            validate_identifier(k, "key", self.identifier_dialect)
        from .copy_writer import copy_writer
        from .sqlite.staged_writer import staged_writer

        return (
            staged_writer(self, name, keys, shared)
            or copy_writer(self, name, keys)
            or UpsertWriter(self, name, keys)
        )

    def insert(self, name: str, data: WriteData, key: str | Sequence[str]) -> int:
        """Insert ``data`` into table ``name`` in one transaction, creating it when missing.

        Raises ``DuplicateKey`` (nothing written) when any ``key`` value already exists, so
        concurrent writers can claim a key safely. Returns rows written.
        """
        return insert_rows(self, name, data, key)

    def delete(self, name: str, where: Mapping[str, Any]) -> int:
        """Delete the rows of ``name`` matching ``where`` (``{col: value}`` or ``{col: [values]}``)
        in one transaction; returns how many were deleted."""
        return delete_rows(self, name, where)

    def blob_store(self) -> SqlBlobStore:
        """Chunked files in this database (where server stores keep model artifacts and Ray
        Train checkpoints by default), in two tables created on first use."""
        return SqlBlobStore(self)

    def tables(self) -> list[str]:
        """Names of the tables in the connected database/schema."""
        with self._errors("listing tables"):
            return sorted(sa.inspect(self._engine).get_table_names())

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

    # -- internals used by queries and writes ---------------------------------------------
    @contextmanager
    def _errors(self, context: str) -> Iterator[None]:
        try:
            yield
        except (sa.exc.DBAPIError, sa.exc.SQLAlchemyError, OSError) as exc:
            raise translate(exc, secrets=self._secrets, context=context) from None
        except (OverflowError, TypeError) as exc:
            # Drivers refuse some parameter values outside the DBAPI error tree (sqlite3: an
            # int past 64 bits; PyMySQL: a dict): still the query's fault, not a crash.
            raise translate(exc, secrets=self._secrets, context=context) from None

    def _reflect(self, name: str) -> sa.Table:
        validate_identifier(name, "table name", self.identifier_dialect, table=True)
        with self._errors(f"reading the columns of table {name!r}"):
            try:
                with self._engine.connect() as conn:
                    return reflect_table(conn, name)
            except sa.exc.NoSuchTableError:
                known = sa.inspect(self._engine).get_table_names()
                raise TableNotFound(
                    f"table {name!r} does not exist in {self.url}; existing tables: "
                    f"{sorted(known)[:20]}"
                ) from None

    def _has_table(self, name: str) -> bool:
        with self._errors(f"looking up table {name!r}"):
            return sa.inspect(self._engine).has_table(name)

    def _scalar(self, stmt: Any, context: str) -> Any:
        with self._errors(context), self._engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def _scalars(self, statements: list[Any], context: str) -> list[Any]:
        with self._errors(context), self._engine.connect() as conn:
            return [conn.execute(stmt).scalar() for stmt in statements]

    def _column_values(self, stmt: Any, context: str) -> list[Any]:
        with self._errors(context), self._engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def _fetch(self, stmt: Any, context: str) -> tuple[list[Any], list[str]]:
        with self._errors(context), self._engine.connect() as conn:
            compiled = self._compile(stmt, "dbapi")
            result = conn.exec_driver_sql(compiled.sql, compiled.params)
            return list(result.fetchall()), list(result.keys())

    def _result_names(self, stmt: Any, context: str) -> list[str]:
        with self._errors(context), self._engine.connect() as conn:
            return list(conn.execute(stmt).keys())

    def _fast_reader(self) -> str:
        if sql_reader() == "dbapi":
            return "dbapi"
        if self.backend == "sqlite" and not self.is_memory and installed("adbc_driver_sqlite"):
            return "adbc-sqlite"
        if self.backend == "postgresql" and installed("adbc_driver_postgresql"):
            return "adbc-postgresql"
        return "dbapi"

    def _server_cpus(self) -> int | None:
        """This machine's cores when the database server shares them with the readers,
        else None: the shard planner then runs fewer shards than the cluster has CPUs.

        Only for PostgreSQL read by ADBC, where the server's backend spends about as much
        CPU encoding a shard as the read task decoding it. A DBAPI reader's Python row
        loop costs many times the server's work, and SQLite has no server process.
        """
        if self._fast_reader() != "adbc-postgresql":
            return None
        host = _server_host(self._url)
        if not is_local_host(host, frozenset({socket.gethostname().lower()})):
            return None
        return os.cpu_count() or 1

    def _literal(self, stmt: Any, schema: pa.Schema) -> str | None:
        """``stmt`` for connectorx (SQLite file reads of plain types and int values), or None."""
        if (
            self._fast_reader() != "adbc-sqlite"
            or sql_reader() == "adbc"
            or not connectorx_read.available()
            or not connectorx_read.plain_schema(schema)
        ):
            return None
        return connectorx_read.literal_sql(stmt, self._engine.dialect)

    def _compile(self, stmt: Any, reader: str) -> Compiled:
        dialect = self._engine.dialect
        if reader == "adbc-postgresql":
            dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params()
        processors = getattr(compiled, "_bind_processors", {})
        processed = {
            name: processors[name](value) if name in processors else value
            for name, value in params.items()
        }
        if compiled.positional:
            order = compiled.positiontup or []
            result = Compiled(compiled.string, tuple(processed[n] for n in order))
            if reader == "adbc-postgresql":
                return via_settings(result) or result
            return result
        return Compiled(compiled.string, processed)

    def _row_locator(self, table: sa.Table) -> tuple[str, Any] | None:
        """A physical row locator to split a keyless table by, or None."""
        if self.backend == "sqlite":
            names = {c.name.lower() for c in table.columns}
            for alias in ("rowid", "_rowid_", "oid"):
                if alias in names:
                    continue
                column = sa.literal_column(alias, type_=sa.Integer())
                try:
                    with self._engine.connect() as conn:
                        conn.execute(sa.select(column).select_from(table).limit(0))
                except sa.exc.DBAPIError:
                    return None  # a WITHOUT ROWID table
                return "rowid", column
            return None
        if self.backend == "postgresql":
            try:
                with self._engine.connect() as conn:
                    conn.execute(sa.select(sa.literal_column("ctid")).select_from(table).limit(0))
            except sa.exc.DBAPIError:
                return None  # a view or foreign table: no heap pages
            return "ctid", _CtidPages()
        return None

    def _estimated_rows(self, table: sa.Table) -> int | None:
        """The server's own row estimate for ``table`` (PostgreSQL statistics), if any."""
        if self.backend != "postgresql":
            return None
        qualified = self._engine.dialect.identifier_preparer.format_table(table)
        # As PostgreSQL's planner does: density from the last ANALYZE times current pages,
        # so a table that grew since then is not mistaken for a small one. Below 10k analysed
        # rows the density is too rough and COUNT(*) is cheap anyway.
        stmt = sa.text(
            "SELECT CASE WHEN relpages > 0 AND reltuples >= 10000 THEN CAST(reltuples / relpages * "
            "(pg_relation_size(oid) / CAST(current_setting('block_size') AS integer)) AS bigint)"
            " END FROM pg_class WHERE oid = CAST(:t AS regclass)"
        ).bindparams(t=qualified)
        value = self._scalar(stmt, f"estimating the rows of table {table.name!r}")
        return int(value) if value is not None and value > 0 else None

    def _ctid_pages(self, table: sa.Table | None) -> int:
        assert table is not None
        qualified = self._engine.dialect.identifier_preparer.format_table(table)
        stmt = sa.text(
            "SELECT CAST(pg_relation_size(CAST(:t AS regclass)) / "
            "CAST(current_setting('block_size') AS integer) AS bigint)"
        ).bindparams(t=qualified)
        return int(self._scalar(stmt, f"sizing table {table.name!r}") or 0)


def _server_host(url: URL) -> str | None:
    """The host a libpq URL connects to: its host, else the query string's ``host=`` (a
    socket folder or a name); None means libpq's default Unix socket. Several hosts (a
    failover list) are named as such, never taken for a local one."""
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        return host[0] if len(host) == 1 else "several hosts"
    return host


def _engine_options(url: URL) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 30}}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "postgresql":
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    elif backend in ("mysql", "mariadb"):
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "charset": "utf8mb4"}
    return options


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, wal: bool) -> None:
    # WAL lets Ray's read tasks read while another connection writes. In WAL mode,
    # synchronous=NORMAL syncs at checkpoints instead of at every commit (Rails' default
    # too): the database stays consistent after a crash, and a power cut can lose only the
    # last commits. Write-back commits once per batch, so this saved ~40 ms a batch. In a
    # rollback-journal file (a user's, unless sqlite_wal=True) both stay as they are.
    cur = dbapi_conn.cursor()
    try:
        mode = cur.execute("PRAGMA journal_mode=WAL" if wal else "PRAGMA journal_mode")
        if str(mode.fetchone()[0]).lower() == "wal":
            cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()
