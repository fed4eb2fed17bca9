"""SQLite shards read by connectorx: only plain types and int values, exactly as ADBC reads.

connectorx binds no parameters, so a shard uses it only when every value of its statement
is a Python int (written in as digits); anything else stays a bound parameter read by ADBC.
The shards are read here in the test process (a shard reads the same in any process), so
the readers can be watched and broken.
"""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pytest

import pinnacle_ray as pr
from pinnacle_ray.datastore.sql import read as sql_read
from pinnacle_ray.datastore.sql.sqlite import connectorx_read as sqlite_connectorx

NAMES = ["order", "größe", "flag", "text", "blob", "small"]


@pytest.fixture
def plain(tmp_path, monkeypatch) -> tuple[pr.SqlDatastore, str]:
    """A SQLite table of plain types, reserved and non-ASCII column names, NULLs."""
    monkeypatch.delenv("PINNACLE_RAY_SQL_READER", raising=False)
    store = pr.connect(tmp_path / "plain.db")
    n = 3_000
    rows = pa.table(
        {
            "order": pa.array(range(n), pa.int64()),
            "größe": pa.array([i / 4 if i % 7 else None for i in range(n)], pa.float64()),
            "flag": pa.array([i % 3 == 0 if i % 11 else None for i in range(n)], pa.bool_()),
            "text": pa.array([f"zeile {i} ✓" if i % 5 else None for i in range(n)]),
            "blob": pa.array([bytes([i % 256, 0]) if i % 13 else None for i in range(n)]),
            "small": pa.array([i % 100 for i in range(n)], pa.int32()),
        }
    )
    store.write("plain", rows, key="order")
    yield store, "plain"
    store.close()


def _read_in_process(query: pr.SqlQuery, shards: int = 3) -> pa.Table:
    plan = query.plan(shards)
    tables = [t for shard in plan.shards for t in shard.read()]
    return pa.concat_tables([query.schema().empty_table(), *tables]).sort_by("order")


def _forbid(monkeypatch, target, name: str) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} was used")

    monkeypatch.setattr(target, name, refuse)


def test_plain_table_shards_are_read_by_connectorx_with_the_same_rows_and_types_as_adbc(
    plain, monkeypatch
):
    store, name = plain
    query = store.table(name, key="order")
    assert all(s.literal is not None for s in query.plan(3).shards)

    with monkeypatch.context() as m:
        _forbid(m, sql_read.SqlShard, "_adbc_tables")
        _forbid(m, sql_read.SqlShard, "_read_dbapi")
        by_connectorx = _read_in_process(query)
    monkeypatch.setenv("PINNACLE_RAY_SQL_READER", "adbc")
    adbc_query = store.table(name, key="order")
    assert all(s.literal is None for s in adbc_query.plan(3).shards)
    by_adbc = _read_in_process(adbc_query)

    assert by_connectorx.num_rows == 3_000
    assert by_connectorx.schema == by_adbc.schema == query.schema()
    assert by_connectorx.equals(by_adbc)


def test_a_connectorx_dataset_holds_every_row_once(plain):
    store, name = plain
    ds = store.table(name, key="order").to_dataset(shards=4)
    got = pa.concat_tables(ds.iter_batches(batch_format="pyarrow", batch_size=None))
    assert sorted(got.column("order").to_pylist()) == list(range(3_000))
    assert got.schema == store.table(name).schema()


def test_integer_where_values_are_written_in_as_digits(plain):
    store, name = plain
    query = store.table(name, key="order", where={"small": [3, 4]})
    shard = query.plan(2).shards[0]
    assert shard.literal is not None and "?" not in shard.literal
    assert "IN (3, 4)" in shard.literal
    assert _read_in_process(query, 2).num_rows == 60


def test_a_string_where_value_is_never_written_into_the_sql(plain, monkeypatch):
    store, name = plain
    hostile = "x'); DROP TABLE plain; --"
    query = store.table(name, key="order", where={"text": hostile})
    for shard in query.plan(2).shards:
        assert shard.literal is None  # read by ADBC, the value bound
        assert hostile not in shard.fast.sql and hostile in shard.fast.params
    _forbid(monkeypatch, sqlite_connectorx, "batches")
    assert _read_in_process(query, 2).num_rows == 0
    assert store.table(name).count() == 3_000


def test_dates_keep_the_adbc_reader(tmp_path, monkeypatch):
    monkeypatch.delenv("PINNACLE_RAY_SQL_READER", raising=False)
    store = pr.connect(tmp_path / "dated.db")
    store.write("dated", [{"id": i, "day": dt.date(2024, 1, 1 + i)} for i in range(5)], key="id")
    query = store.table("dated", key="id")
    assert all(s.literal is None for s in query.plan(2).shards)
    _forbid(monkeypatch, sqlite_connectorx, "batches")
    rows = pa.concat_tables(t for s in query.plan(2).shards for t in s.read())
    assert sorted(rows.column("day").to_pylist()) == [dt.date(2024, 1, 1 + i) for i in range(5)]


def test_a_connectorx_failure_before_any_row_falls_back_to_adbc_without_duplicates(
    plain, monkeypatch
):
    store, name = plain

    def broken(path, sql, batch_rows):
        raise RuntimeError("connectorx could not parse the query")
        yield  # a generator, as the real one

    monkeypatch.setattr(sqlite_connectorx, "batches", broken)
    got = _read_in_process(store.table(name, key="order"))
    assert got.column("order").to_pylist() == list(range(3_000))


def test_connectorx_never_creates_a_database_file_that_is_gone(plain):
    store, name = plain
    shard = store.table(name, key="order").plan(1).shards[0]
    path = store._url.database
    os.remove(path)
    with pytest.raises(pr.PinnacleError):
        list(shard.read())
    assert not os.path.exists(path)


def test_connectorx_streams_batches_no_larger_than_the_planned_block(plain, monkeypatch):
    from pinnacle_ray.datastore.sql import query as sql_query

    store, name = plain
    monkeypatch.setattr(sql_query, "_TARGET_BLOCK_BYTES", 1)  # as for very wide rows
    shard = store.table(name, key="order").plan(1).shards[0]
    assert shard.batch_rows == 1024
    _forbid(monkeypatch, sql_read.SqlShard, "_adbc_tables")
    sizes = [t.num_rows for t in shard.read()]
    assert sum(sizes) == 3_000 and max(sizes) <= 1024


@pytest.mark.parametrize("which", ["fast", "adbc"])
def test_a_file_whose_path_has_spaces_hashes_and_question_marks_is_read_arrow_natively(
    tmp_path, monkeypatch, which
):
    if which == "adbc":
        monkeypatch.setenv("PINNACLE_RAY_SQL_READER", "adbc")
    else:
        monkeypatch.delenv("PINNACLE_RAY_SQL_READER", raising=False)
    folder = tmp_path / "my data #1 ?ü"
    folder.mkdir()
    store = pr.connect(folder / "shop 2.db")
    store.write("rows", [{"id": i, "x": i / 2} for i in range(100)], key="id")
    _forbid(monkeypatch, sql_read.SqlShard, "_read_dbapi")
    shards = store.table("rows", key="id").plan(2).shards
    got = pa.concat_tables(t for s in shards for t in s.read())
    assert sorted(got.column("id").to_pylist()) == list(range(100))
    store.close()
