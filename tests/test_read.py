"""Reading queries as sharded Ray Datasets: every row exactly once, in parallel, typed."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

import pinnacle_ray as pr


def _ids(ds) -> list:
    return _column(ds, "id")


def _column(ds, name: str) -> list:
    batches = list(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    return [v for b in batches for v in b.column(name).to_pylist()]


def _sum(ds, name: str) -> float:
    # Summed from the blocks: Ray Data's ds.sum() runs a shuffle, seconds for a few rows.
    return float(sum(v for v in _column(ds, name) if v is not None))


def _make(store, name: str, n: int, key_values=None) -> None:
    rng = np.random.default_rng(0)
    data = {
        "id": np.arange(n, dtype=np.int64),
        "k": key_values if key_values is not None else np.arange(n, dtype=np.int64),
        "x": rng.random(n),
        "label": rng.integers(0, 3, n),
    }
    store.write(name, pa.table(data), key="id")


def _db_sum(store, name: str, column: str) -> float:
    with store._engine.connect() as conn:
        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
        return float(conn.execute(sa.select(sa.func.sum(table.c[column]))).scalar() or 0)


def _rows_for(backend: str, n: int) -> int:
    # Server round trips cost more on 2 cores; SQLite carries the 100k-row case.
    return n if backend == "sqlite" or n < 100_000 else 20_000


@pytest.mark.parametrize("n", [0, 1, 7, 100_000])
def test_every_row_is_read_exactly_once_when_the_table_has_n_rows(store, tables, reader, n):
    n = _rows_for(store.backend, n)
    name = tables("rows")
    _make(store, name, n)
    q = store.table(name, key="k")
    for shards in (None, 4):
        ds = q.to_dataset(shards=shards)
        assert sorted(_ids(ds)) == list(range(n))
    assert _sum(ds, "x") == pytest.approx(_db_sum(store, name, "x"))


@pytest.mark.with_mongo
def test_cached_dataset_reads_the_database_once_and_every_row_on_each_pass(store, tables):
    name = tables("cached")
    _make(store, name, 1_000)
    ds = store.table(name, key="k").to_dataset(shards=3, cache=True)
    before = _sum(ds, "x")
    assert sorted(_ids(ds)) == list(range(1_000))
    # The rows now live in Ray's object store: later passes do not see the database change.
    store.write(name, pa.table({"id": np.arange(1_000), "x": np.full(1_000, -1.0)}), key="id")
    for _ in range(2):
        assert sorted(_ids(ds)) == list(range(1_000)) and _sum(ds, "x") == pytest.approx(before)
    fresh = store.table(name, key="k").to_dataset(shards=3)
    assert _sum(fresh, "x") == -1_000.0


@pytest.mark.with_mongo
def test_empty_result_is_a_dataset_of_zero_rows_with_the_schema(store, tables, reader):
    name = tables("empty")
    _make(store, name, 10)
    ds = store.table(name, where={"label": 99}).to_dataset()
    assert ds.count() == 0
    assert ds.schema().names == ["id", "k", "x", "label"]


@pytest.mark.with_mongo
def test_repeated_key_values_at_split_points_are_read_once(store, tables, reader):
    n = 2_000
    keys = np.where(np.arange(n) < n // 2, 5, np.arange(n) % 37)  # half the rows share a key
    name = tables("dupes")
    _make(store, name, n, keys)
    ds = store.table(name, key="k").to_dataset(shards=6)
    assert sorted(_ids(ds)) == list(range(n))


@pytest.mark.with_mongo
def test_null_keys_are_read_once(store, tables, reader):
    name = tables("nulls")
    rows = [{"id": i, "k": None if i % 5 == 0 else i * 3, "x": float(i)} for i in range(200)]
    store.write(name, rows, key="id")
    q = store.table(name, key="k")
    plan = q.plan(shards=4)
    assert any("IS NULL" in s.describe() for s in plan.shards)
    assert sorted(_ids(q.to_dataset(shards=4))) == list(range(200))


@pytest.mark.with_mongo
def test_skewed_key_gives_balanced_shards_from_data_quantiles(store, tables):
    n = 5_000
    keys = (np.random.default_rng(1).pareto(1.0, n) * 1000).astype(np.int64)
    name = tables("skew")
    _make(store, name, n, keys)
    plan = store.table(name, key="k").plan(shards=4)
    sizes = [sum(t.num_rows for t in s.read()) for s in plan.shards]
    assert sum(sizes) == n
    assert max(sizes) <= 2 * (n / len(sizes)), sizes


@pytest.mark.with_mongo
def test_string_and_timestamp_keys_split_into_ranges(store, tables, reader):
    name = tables("keys")
    base = dt.datetime(2024, 1, 1)
    rows = [
        {"id": i, "code": f"c{(i * 7919) % 1000:04d}", "at": base + dt.timedelta(minutes=i)}
        for i in range(1_000)
    ]
    store.write(name, rows, key="id")
    for key in ("code", "at"):
        q = store.table(name, key=key)
        assert len(q.plan(shards=3)) == 3
        assert sorted(_ids(q.to_dataset(shards=3))) == list(range(1_000))


def test_sql_query_with_bound_params_reads_in_key_ranges(store, tables, reader):
    name = tables("sqlq")
    _make(store, name, 1_000)
    table = store._engine.dialect.identifier_preparer.quote(name)
    q = store.sql(f"SELECT id, x * 2 AS y FROM {table} WHERE id < :n", params={"n": 500}, key="id")
    assert q.count() == 500
    assert len(q.plan(shards=3)) == 3
    ds = q.to_dataset(shards=3)
    assert sorted(_ids(ds)) == list(range(500))
    assert ds.schema().names == ["id", "y"]


@pytest.mark.with_mongo
def test_where_and_columns_select_rows_and_fields(store, tables, reader):
    name = tables("where")
    _make(store, name, 300)
    q = store.table(name, columns=["id", "x"], where={"label": [0, 2]}, key="id")
    expected = q.count()
    ds = q.to_dataset(shards=2)
    assert ds.schema().names == ["id", "x"] and ds.count() == expected > 0


def test_plan_for_a_100k_row_keyed_table_runs_separate_parallel_tasks(store, tables):
    n = _rows_for(store.backend, 100_000)
    name = tables("par")
    _make(store, name, n)
    q = store.table(name)  # key: the primary key
    assert q.key == "id"
    plan = q.plan() if n == 100_000 else q.plan(shards=2)
    assert len(plan) >= 2
    ds = q.to_dataset(shards=len(plan)).materialize()
    executed = re.search(r"(\d+) tasks executed", ds.stats())
    assert executed and int(executed.group(1)) == len(plan), ds.stats()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_keyless_table_reads_in_parallel_through_the_row_locator(store, tables, backend):
    name = tables("nokey")
    with store._engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{name}" (a integer, b text)'))
        conn.execute(
            sa.text(f'INSERT INTO "{name}" (a, b) VALUES (:a, :b)'),
            [{"a": i, "b": "x" * 200} for i in range(5_000)],
        )
    q = store.table(name)
    plan = q.plan(shards=3)
    assert plan.strategy == ("rowid" if backend == "sqlite" else "ctid")
    assert len(plan) == 3
    assert sorted(_column(q.to_dataset(shards=3), "a")) == list(range(5_000))


@pytest.mark.parametrize("backend", ["mariadb"])
def test_keyless_read_falls_back_to_one_task_and_says_so_once(store, tables, caplog, backend):
    name = tables("nokey")
    with store._engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{name}` (a integer)"))
        conn.execute(
            sa.text(f"INSERT INTO `{name}` (a) VALUES (:a)"), [{"a": i} for i in range(50)]
        )
    q = store.table(name)
    with caplog.at_level(logging.WARNING, logger="pinnacle_ray"):
        assert q.to_dataset().count() == 50
        assert q.to_dataset().count() == 50
    lines = [r for r in caplog.records if "one task" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()


def test_sql_query_without_key_reads_in_one_task(store, tables):
    name = tables("nokeysql")
    _make(store, name, 20)
    table = store._engine.dialect.identifier_preparer.quote(name)
    plan = store.sql(f"SELECT * FROM {table}").plan()
    assert plan.strategy == "single" and len(plan) == 1


def test_column_sums_equal_the_database_sums(store, tables, reader):
    name = tables("sums")
    _make(store, name, 3_000)
    ds = store.table(name).to_dataset(shards=3).materialize()
    assert _sum(ds, "x") == pytest.approx(_db_sum(store, name, "x"))
    assert _sum(ds, "label") == _db_sum(store, name, "label")


def test_sqlite_path_and_url_forms_connect_to_the_same_file(tmp_path):
    path = tmp_path / "same.db"
    pr.connect(path).write("t", [{"id": 1}], key="id")
    assert pr.connect(f"sqlite:///{path}").table("t").count() == 1
    assert pr.connect(str(path)).table("t").count() == 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_stale_server_statistics_never_lose_rows(store, tables, backend):
    name = tables("stale")
    _make(store, name, 12_000)
    with store._engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text(f'ANALYZE "{name}"'))
    n = 40_000
    more = pa.table(
        {
            "id": np.arange(12_000, n),
            "k": np.arange(12_000, n),
            "x": np.zeros(n - 12_000),
            "label": np.zeros(n - 12_000, dtype=np.int64),
        }
    )
    store.write(name, more, key="id")
    q = store.table(name)
    plan = q.plan()
    assert plan.rows > 30_000  # the estimate follows the table's current size, not ANALYZE's
    assert sorted(_ids(q.to_dataset(shards=3))) == list(range(n))


def test_where_and_params_bind_dates_times_and_decimals(store, tables, reader):
    from decimal import Decimal

    name = tables("binds")
    base = dt.datetime(2024, 5, 1, 8, 0, 0)
    rows = [
        {
            "id": i,
            "at": base + dt.timedelta(hours=i),
            "day": (base + dt.timedelta(days=i % 3)).date(),
            "price": Decimal(f"{i}.50"),
        }
        for i in range(40)
    ]
    store.write(
        name,
        pa.Table.from_pylist(rows).cast(
            pa.schema(
                [
                    ("id", pa.int64()),
                    ("at", pa.timestamp("us")),
                    ("day", pa.date32()),
                    ("price", pa.decimal128(10, 2)),
                ]
            )
        ),
        key="id",
    )
    q = store.table(
        name,
        where={"at": base + dt.timedelta(hours=5), "day": base.date() + dt.timedelta(days=2)},
        key="id",
    )
    assert _ids(q.to_dataset(shards=2)) == [5]
    quoted = store._engine.dialect.identifier_preparer.quote(name)
    q = store.sql(
        f"SELECT id FROM {quoted} WHERE at >= :t AND price < :p",
        params={"t": base + dt.timedelta(hours=30), "p": Decimal("35.00")},
        key="id",
    )
    assert sorted(_ids(q.to_dataset(shards=2))) == [30, 31, 32, 33, 34]


def test_a_table_read_without_its_primary_key_column_still_counts_and_reads(store, tables):
    name = tables("nopk")
    _make(store, name, 50)
    q = store.table(name, columns=["x"])  # the primary key is not selected
    assert q.key is None
    assert q.count() == 50
    assert q.to_dataset().count() == 50


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_plan_counts_the_cores_a_local_postgresql_server_shares_with_the_readers(
    store, tables, backend
):
    from pinnacle_ray._internal.runtime import cluster_cpus
    from pinnacle_ray.datastore.shards import default_shard_count

    name = tables("cores")
    _make(store, name, 60_000)  # three shards' worth of rows (25k rows per shard at least)
    plan = store.table(name).plan()
    # The test servers are on 127.0.0.1: PostgreSQL keeps a core per shard for its backend.
    server = os.cpu_count() if backend == "postgresql" else None
    assert store._server_cpus() == server
    assert len(plan) == default_shard_count(60_000, cluster_cpus(), server)
    assert sorted(_ids(store.table(name).to_dataset())) == list(range(60_000))
