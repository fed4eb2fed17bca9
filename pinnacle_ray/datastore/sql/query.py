"""Queries against a SQL datastore: resolve columns and key, count, plan shards, read.

A query is a table read (``store.table``) or a SQL text (``store.sql``). Both compile to a
SQLAlchemy selectable; a shard adds a half-open key-range predicate to it. Values are
always bound parameters; identifiers come from the database's own catalog or are quoted.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from ray.data import Dataset

from ..._internal.runtime import cluster_cpus
from ...data import read_shards
from ...errors import ColumnNotFound, ConfigError, InvalidKey, QueryError
from ..identifiers import validate_identifier
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
from .column_types import arrow_type
from .read import SqlShard, conform, rows_to_table
from .where import match as _match

if TYPE_CHECKING:
    from .connection import SqlConnection

__all__ = ["ShardPlan", "SqlQuery"]

logger = logging.getLogger("pinnacle_ray.datastore")

_SAMPLE_ROWS = 1000
_TARGET_BLOCK_BYTES = 32 * 1024 * 1024
_warned_single: set[str] = set()


class SqlQuery:
    """A table or SQL text on a :class:`SqlDatastore`, ready to count, plan and read."""

    def __init__(
        self,
        store: SqlConnection,
        *,
        table: str | None = None,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> None:
        self.store = store
        self.table_name = table
        self.text = text
        self.params = dict(params or {})
        self.where = dict(where or {})
        if table is not None:
            self._table = store._reflect(table)
            self._source, self._columns = self._table_source(columns)
            # The primary key shards the read only when it is selected; otherwise the
            # table's row locator (or one task) reads it.
            pk = self._primary_key()
            key = key or (pk if pk in self.columns else None)
        else:
            self._table = None
            self._source, self._columns = self._text_source(text or "")
        self.key = self._resolve_key(key) if key is not None else None
        self._after: Watermark | None = None  # since(): only rows with key > this

    # -- public --------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        return [c.name for c in self._columns]

    def __repr__(self) -> str:
        what = f"table={self.table_name!r}" if self.table_name else f"sql={self.text!r}"
        since = f", since {self._after.model} v{self._after.version}" if self._after else ""
        return f"SqlQuery({what}, key={self.key!r}{since}, store={self.store.url})"

    def since(self, name: str, version: int | None = None) -> SqlQuery:
        """This query's rows whose key is past what model ``name`` (its latest version, or
        ``version``) was trained on: continue training on what came in since, e.g.
        ``trainer.fit(train=q.since("mlp"), resume_from="mlp")``.

        The watermark is the largest key of the version's training query (its lineage).
        Rows added later with a smaller key are not included: use an increasing key (an
        auto-increment id, an insertion timestamp).
        """
        key_type = self.schema().field(self.key).type if self.key is not None else pa.null()
        mark = watermark_of(self.store.models, name, version, self.key, key_type)
        out = copy.copy(self)
        out._after = mark
        out.__dict__.pop("_read_plan", None)
        return out

    def count(self) -> int:
        """Number of rows the query returns (one ``COUNT(*)`` round trip)."""
        stmt = sa.select(sa.func.count()).select_from(self._select().subquery("pinnacle_count"))
        return int(self.store._scalar(stmt, context="counting rows"))

    def schema(self) -> pa.Schema:
        """The Arrow schema every shard of this query yields."""
        return self._schema()[0]

    def lineage(self) -> dict[str, Any]:
        """What was read, enough to read it again: query, params, key, store URL (masked)."""
        out: dict[str, Any] = {"store": self.store.url, "key": self.key}
        if self.table_name is not None:
            out.update(table=self.table_name, columns=self.columns, where=self.where)
        else:
            out.update(sql=self.text, params=self.params)
        if self._after is not None:
            out.update(since=self._after.lineage())
        plan = getattr(self, "_read_plan", None)
        if plan is not None:  # what the last to_dataset() planned: rows and key range read
            out.update(rows=plan.rows, strategy=plan.strategy)
            if plan.key_range is not None:
                out.update(key_min=plan.key_range[0], key_max=plan.key_range[1])
        return out

    def plan(self, shards: int | None = None) -> ShardPlan:
        """Plan the read: key ranges from the data, a physical row locator, or one task."""
        if shards is not None and (not isinstance(shards, int) or shards < 1):
            raise ConfigError(f"shards must be a positive integer or None, got {shards!r}")
        if self.store.is_memory:
            raise ConfigError(
                "an in-memory SQLite database cannot be read by Ray workers (each process "
                "would see its own empty database); connect to a file, e.g. 'sqlite:///data.db'"
            )
        schema, row_bytes = self._schema()
        split = self._split_column()
        if split is None:
            rows = self.count()
            return self._single_plan(schema, row_bytes, rows, self._no_key_reason())
        strategy, column = split
        stats = self._key_stats(column)
        total = stats.count + stats.nulls
        n = shards or default_shard_count(total, cluster_cpus(), self.store._server_cpus())
        points = None
        if n > 1 and stats.count > 1 and not is_dense_integer(stats):
            points = self._quantiles(column, stats.count, n)
        ranges = plan_ranges(stats, n, points)
        batch_rows = max(1024, min(262_144, _TARGET_BLOCK_BYTES // max(1, row_bytes)))
        label_key = {"key": self.key, "rowid": "rowid", "ctid": "ctid"}[strategy]
        shard_list = [
            self._shard(
                self._range_select(column, r), schema, r.rows, r.describe(label_key), batch_rows
            )
            for r in ranges
        ]
        if strategy == "ctid":
            for s, r in zip(shard_list, ranges, strict=True):
                s.label = _ctid_label(r)
        key_range = (stats.min, stats.max) if strategy == "key" else None
        return ShardPlan(strategy, self.key, total, shard_list, key_range=key_range)

    def to_arrow(self) -> pa.Table:
        """All rows as one Arrow table, read here in the driver: for small results (lookups,
        previews). Training data should use :meth:`to_dataset`, which streams shards in Ray.

        The table has the same planned schema as every shard of :meth:`to_dataset`.
        """
        schema = self._schema()[0]
        rows, names = self.store._fetch(self._select(), f"reading {self._describe_short()}")
        return conform(rows_to_table(rows, names, schema), schema)

    def to_dataset(
        self, shards: int | None = None, *, num_cpus: float | None = None, cache: bool = False
    ) -> Dataset:
        """A ``ray.data.Dataset`` of the query's rows, its shards read in parallel Ray tasks.

        ``num_cpus`` is what each read task reserves (default 1; e.g. 0.25 so reads fit
        beside training workers). ``cache=True`` reads the rows into Ray's object store
        now, in the background, and every pass over the dataset reads them from there:
        for several epochs over rows that fit in it.
        """
        plan = self.plan(shards)
        self._read_plan = plan
        if plan.strategy == "single":
            message = f"{self._describe_short()} reads in one task: {plan.reason}"
            if message not in _warned_single:
                _warned_single.add(message)
                logger.warning(message)
        schema, row_bytes = self._schema()
        name = f"Pinnacle({self.table_name or 'sql'})"
        return read_shards(
            plan.shards, schema, name=name, row_bytes=row_bytes, num_cpus=num_cpus, cache=cache
        )

    # -- sources -------------------------------------------------------------------------
    def _table_source(self, columns: Sequence[str] | None) -> tuple[Any, list[sa.Column]]:
        table = self._table
        assert table is not None
        if columns is None:
            cols = list(table.columns)
        else:
            if isinstance(columns, str):
                raise ConfigError(f"columns must be a list of names, got the string {columns!r}")
            cols = [
                self._column(table, validate_identifier(c, "column", self.store.identifier_dialect))
                for c in columns
            ]
            if not cols:
                raise ConfigError("columns is empty; pass None for all columns or some names")
        for name, value in self.where.items():
            _match(
                self._column(
                    table, validate_identifier(name, "where column", self.store.identifier_dialect)
                ),
                value,
            )
        return table, cols

    def _text_source(self, text: str) -> tuple[Any, list[sa.Column]]:
        if not isinstance(text, str) or not text.strip():
            raise QueryError("the SQL text is empty; pass a SELECT statement")
        body = text.strip().rstrip(";").strip()
        if ";" in body:
            # A second statement would run with the first; refuse rather than guess.
            stripped = _strip_literals(body)
            if ";" in stripped:
                raise QueryError("the SQL text holds more than one statement; pass one SELECT")
        textual = sa.text(body)
        _check_params(textual, self.params)
        textual = textual.bindparams(**self.params) if self.params else textual
        probe = (
            sa.select(sa.literal_column("*"))
            .select_from(textual.columns().subquery("pinnacle_q"))
            .where(sa.false())
        )
        names = self.store._result_names(probe, context="checking the SQL query")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise QueryError(f"the query returns duplicate column names {dupes}; alias them")
        sub = textual.columns(*[sa.column(n) for n in names]).subquery("pinnacle_q")
        return sub, [sub.c[n] for n in names]

    def _column(self, table: sa.Table, name: str) -> sa.Column:
        if name not in table.c:
            raise ColumnNotFound(
                f"table {table.name!r} has no column {name!r}; "
                f"its columns are {[c.name for c in table.columns]}"
            )
        return table.c[name]

    def _primary_key(self) -> str | None:
        assert self._table is not None
        pk = list(self._table.primary_key.columns)
        return pk[0].name if pk else None

    def _resolve_key(self, key: str) -> str:
        validate_identifier(key, "key", self.store.identifier_dialect)
        if key not in self.columns:
            raise InvalidKey(
                f"key {key!r} is not a column of the query's result; "
                f"pick one of {self.columns} (a sortable, preferably indexed column)"
            )
        col = next(c for c in self._columns if c.name == key)
        if isinstance(col.type, (sa.JSON, sa.ARRAY, sa.types._Binary, sa.Boolean)):
            raise InvalidKey(
                f"key {key!r} has type {col.type}, which cannot be split into ranges; use an "
                "integer, timestamp or string column"
            )
        return key

    def _select(self) -> sa.Select:
        stmt = sa.select(*self._columns)
        if self._table is not None:
            stmt = stmt.select_from(self._table)
            for name, value in self.where.items():
                stmt = stmt.where(_match(self._table.c[name], value))
        return self._past_watermark(stmt)

    def _past_watermark(self, stmt: sa.Select) -> sa.Select:
        """``stmt`` limited to keys past the since() watermark (unchanged without one)."""
        if self._after is None:
            return stmt
        column = next(c for c in self._columns if c.name == self.key)
        typed = {} if isinstance(column.type, sa.types.NullType) else {"type_": column.type}
        return stmt.where(column > sa.bindparam(None, self._after.value, **typed))

    # -- planning ------------------------------------------------------------------------
    def _split_column(self) -> tuple[str, Any] | None:
        if self.key is not None:
            return "key", next(c for c in self._columns if c.name == self.key)
        if self._table is None:
            return None
        locator = self.store._row_locator(self._table)
        if locator is None:
            return None
        return locator

    def _no_key_reason(self) -> str:
        if self._table is None:
            return "no key given; pass key='<sortable column>' to read in parallel"
        return (
            f"table has no primary key and {self.store.backend} has no row locator; pass "
            "key='<sortable column>' to read in parallel"
        )

    def _describe_short(self) -> str:
        return f"table {self.table_name!r}" if self.table_name else "SQL query"

    def _filtered(self, *columns: Any) -> sa.Select:
        """``SELECT columns`` over the query's rows, without its other columns."""
        stmt = sa.select(*columns).select_from(self._source)
        for name, value in self.where.items():
            stmt = stmt.where(_match(self._source.c[name], value))
        return self._past_watermark(stmt)

    def _key_stats(self, column: Any) -> KeyStats:
        if isinstance(column, _CtidPages):
            pages = self.store._ctid_pages(self._table)
            return KeyStats(count=pages, nulls=0, min=0, max=max(0, pages - 1))
        # Four single-purpose queries: each is answered from an index or the table's row
        # count where the backend can (SQLite: ~5 ms on 1M rows vs ~300 ms for one
        # combined COUNT/MIN/MAX, which forces a full scan).
        # Row counts only balance shards (the outer ranges are open, so every row is read
        # whatever the count): an unfiltered PostgreSQL table uses the planner's estimate.
        estimate = None
        if self._table is not None and not self.where and self._after is None:
            estimate = self.store._estimated_rows(self._table)
        count_stmt = (
            sa.select(sa.literal(estimate)) if estimate else self._filtered(sa.func.count())
        )
        statements = [
            count_stmt,
            self._filtered(sa.func.min(column)),
            self._filtered(sa.func.max(column)),
            self._filtered(sa.func.count()).where(column.is_(None)),
        ]
        try:
            total, lo, hi, nulls = self.store._scalars(statements, "reading the key range")
        except QueryError as exc:
            raise InvalidKey(f"key {self.key!r} cannot be used to split the read: {exc}") from None
        if lo is not None and isinstance(lo, (dict, list, bytes, bytearray)):
            raise InvalidKey(
                f"key {self.key!r} holds {type(lo).__name__} values; use a "
                "sortable column (integer, timestamp, string)"
            )
        return KeyStats(count=int(total) - int(nulls), nulls=int(nulls), min=lo, max=hi)

    def _quantiles(self, column: Any, count: int, shards: int) -> list[Any]:
        ranks = quantile_ranks(count, shards)
        if not ranks:
            return []
        numbered = (
            self._filtered(
                column.label("k"), sa.func.row_number().over(order_by=column).label("rn")
            )
            .where(column.is_not(None))
            .subquery("pinnacle_n")
        )
        stmt = sa.select(numbered.c.k).where(numbered.c.rn.in_(ranks)).order_by(numbered.c.rn)
        return self.store._column_values(stmt, "computing shard split points")

    def _range_select(self, column: Any, r: KeyRange) -> sa.Select:
        stmt = self._select()
        if isinstance(column, _CtidPages):
            return stmt.where(*column.predicate(r))
        if r.unbounded:
            return stmt
        if r.nulls == "only":
            return stmt.where(column.is_(None))
        # An untyped column (from SQL text) takes the bound value's own type.
        typed = {} if isinstance(column.type, sa.types.NullType) else {"type_": column.type}
        if r.lo is not None:
            stmt = stmt.where(column >= sa.bindparam(None, r.lo, **typed))
        if r.hi is not None:
            stmt = stmt.where(column < sa.bindparam(None, r.hi, **typed))
        if r.lo is None and r.hi is None:
            stmt = stmt.where(column.is_not(None))
        return stmt

    def _single_plan(self, schema: pa.Schema, row_bytes: int, rows: int, reason: str) -> ShardPlan:
        batch_rows = max(1024, min(262_144, _TARGET_BLOCK_BYTES // max(1, row_bytes)))
        shard = self._shard(self._select(), schema, rows, "all rows", batch_rows)
        return ShardPlan("single", None, rows, [shard], reason)

    def _shard(
        self, stmt: sa.Select, schema: pa.Schema, rows: int | None, label: str, batch_rows: int
    ) -> SqlShard:
        reader = self.store._fast_reader()
        fast = self.store._compile(stmt, reader) if reader != "dbapi" else None
        # connectorx only for table reads: it re-parses the SQL, which a query we wrote
        # always passes, while a user's SQL text may not or may cost a second execution.
        literal = self.store._literal(stmt, schema) if self._table is not None else None
        return SqlShard(
            url=self.store._url,
            reader=reader,
            fast=fast,
            dbapi=self.store._compile(stmt, "dbapi"),
            schema=schema,
            rows=rows,
            label=label,
            batch_rows=batch_rows,
            literal=literal,
        )

    def _schema(self) -> tuple[pa.Schema, int]:
        if not hasattr(self, "_schema_cache"):
            types = [arrow_type(c.type) for c in self._columns]
            sample = None
            if any(t is None for t in types):
                stmt = self._select().limit(_SAMPLE_ROWS)
                rows, names = self.store._fetch(stmt, "sampling rows to infer column types")
                sample = rows_to_table(rows, names, None)
                types = [t if t is not None else sample.column(i).type for i, t in enumerate(types)]
            schema = pa.schema(
                [pa.field(c.name, t) for c, t in zip(self._columns, types, strict=True)]
            )
            self._schema_cache = (schema, _row_bytes(schema, sample))
        return self._schema_cache


class _CtidPages:
    """PostgreSQL's physical row locator, split by heap page: ``ctid`` in ``[(lo,0), (hi,0))``."""

    def __init__(self) -> None:
        self.type = sa.String()

    def predicate(self, r: KeyRange) -> list[Any]:
        ctid = sa.literal_column("ctid")
        out = []
        if r.lo is not None:
            out.append(ctid >= sa.cast(sa.bindparam(None, f"({int(r.lo)},0)"), _TID))
        if r.hi is not None:
            out.append(ctid < sa.cast(sa.bindparam(None, f"({int(r.hi)},0)"), _TID))
        return out


class _Tid(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "tid"


_TID = _Tid()


def _ctid_label(r: KeyRange) -> str:
    lo = "start" if r.lo is None else f"page {r.lo}"
    hi = "end" if r.hi is None else f"page {r.hi}"
    return f"ctid from {lo} to {hi}"


def _check_params(textual: sa.TextClause, params: dict[str, Any]) -> None:
    """QueryError unless ``params`` binds exactly the ``:name`` placeholders of the text."""
    wanted = set(textual._bindparams)
    unknown = sorted(str(k) for k in params if k not in wanted)
    missing = sorted(wanted - set(params))
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"params has {unknown}, which the SQL text never uses as :name")
        if missing:
            problems.append(f"the SQL text uses :{', :'.join(missing)} but params has no value")
        raise QueryError(
            "; ".join(problems) + f". Placeholders in the text: {sorted(wanted) or 'none'}"
        )


def _row_bytes(schema: pa.Schema, sample: pa.Table | None) -> int:
    if sample is not None and sample.num_rows:
        return max(1, sample.nbytes // sample.num_rows)
    width = 0
    for f in schema:
        try:
            width += f.type.bit_width // 8
        except ValueError:
            width += 32  # variable width: a typical short string
    return max(1, width)


def _strip_literals(sql: str) -> str:
    """``sql`` without the contents of quoted strings/identifiers (to look for ``;``)."""
    out, quote = [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in ("'", '"', "`"):
            quote = ch
            continue
        out.append(ch)
    return "".join(out)
