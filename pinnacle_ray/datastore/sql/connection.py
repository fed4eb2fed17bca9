"""What the SQL store's parts use of the store: its engine, URL and the helpers that run a
statement with the store's error translation.

:class:`~.store.SqlDatastore` is the one implementation. Its parts (queries, writes, bulk
COPY, blob tables, SQLite staging) type against :class:`SqlConnection` instead of the
class, so no part imports the store, which imports them: imports in this folder run one
way. The underscored members are internal to the datastore room, not user API.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..base import Datastore

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy as sa
    from sqlalchemy.engine import URL

    from ..base import ModelVersions
    from .read import Compiled

__all__ = ["SqlConnection"]


class SqlConnection(Datastore, Protocol):
    """A connected SQL datastore, as its queries, writers and blob tables see it: the
    :class:`~..base.Datastore` surface and the internals below."""

    backend: str  # SQLAlchemy's backend name: "sqlite", "postgresql", "mysql", ...
    is_memory: bool  # an in-memory SQLite database (one process only)
    _url: URL
    _engine: sa.Engine
    _secrets: tuple[str, ...]  # masked in every error message

    @property
    def identifier_dialect(self) -> str:
        """How table and column names are checked here (the dialect's length limit)."""
        ...

    @property
    def models(self) -> ModelVersions:
        """The model registry the store was handed (``q.since`` reads a version's lineage)."""
        ...

    def _errors(self, context: str) -> AbstractContextManager[None]:
        """Translate driver errors raised inside into ``PinnacleError``s naming ``context``."""
        ...

    def _reflect(self, name: str) -> sa.Table:
        """Table ``name`` as it is in the database (``TableNotFound`` when missing)."""
        ...

    def _has_table(self, name: str) -> bool: ...

    def _scalar(self, stmt: Any, context: str) -> Any: ...

    def _scalars(self, statements: list[Any], context: str) -> list[Any]: ...

    def _column_values(self, stmt: Any, context: str) -> list[Any]: ...

    def _fetch(self, stmt: Any, context: str) -> tuple[list[Any], list[str]]: ...

    def _result_names(self, stmt: Any, context: str) -> list[str]: ...

    def _fast_reader(self) -> str:
        """Which shard reader this store uses: "adbc-sqlite", "adbc-postgresql" or "dbapi"."""
        ...

    def _server_cpus(self) -> int | None: ...

    def _literal(self, stmt: Any, schema: pa.Schema) -> str | None: ...

    def _compile(self, stmt: Any, reader: str) -> Compiled: ...

    def _row_locator(self, table: sa.Table) -> tuple[str, Any] | None: ...

    def _estimated_rows(self, table: sa.Table) -> int | None: ...

    def _ctid_pages(self, table: sa.Table | None) -> int: ...
