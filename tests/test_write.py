"""Writing back: idempotent upserts, created tables, types and identifiers that survive."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

import pinnacle_ray as pr

UTC = dt.timezone.utc


def _rows(store, name: str, key: str = "id") -> list[dict]:
    ds = store.table(name).to_dataset(shards=2)
    rows = [
        r for b in ds.iter_batches(batch_format="pyarrow", batch_size=None) for r in b.to_pylist()
    ]
    return sorted(rows, key=lambda r: r[key])


def _typed_table() -> pa.Table:
    ts = dt.datetime(2024, 3, 1, 12, 30, 45, 123456)
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "f": pa.array([1.5, -2.25, None], pa.float64()),
            "b": pa.array([True, False, None], pa.bool_()),
            "s": pa.array(["größe ✓", "日本語", None], pa.string()),
            "by": pa.array([b"\x00\x01", b"", None], pa.binary()),
            "d": pa.array([dt.date(2024, 2, 29), dt.date(1970, 1, 1), None], pa.date32()),
            "ts": pa.array([ts, ts + dt.timedelta(days=1), None], pa.timestamp("us")),
            "tz": pa.array(
                [ts.replace(tzinfo=UTC), dt.datetime(2024, 1, 1, 23, 0, tzinfo=UTC), None],
                pa.timestamp("us", tz="UTC"),
            ),
            "dec": pa.array([Decimal("12345.67"), Decimal("-0.01"), None], pa.decimal128(10, 2)),
            "big": pa.array([2**53 + 1, -(2**40), None], pa.int64()),
        }
    )


def test_types_survive_a_write_and_sharded_read(store, tables, reader):
    name = tables("types")
    source = _typed_table()
    assert store.write(name, source, key="id") == 3
    got = _rows(store, name)
    schema = store.table(name).schema()
    for column in ("id", "f", "b", "s", "by", "d", "ts", "dec", "big"):
        assert schema.field(column).type == source.schema.field(column).type, column
    for want, row in zip(source.to_pylist(), got, strict=True):
        for column, value in want.items():
            seen = row[column]
            if column == "tz" and value is not None and store.backend != "postgresql":
                # Only PostgreSQL stores a zone; others keep the UTC wall time.
                value = value.astimezone(UTC).replace(tzinfo=None)
            assert seen == value, (column, seen, value)


@pytest.mark.with_mongo
def test_reserved_and_non_ascii_identifiers_work(store, tables, reader):
    name = tables("order")
    rows = [{"order": i, "größe": float(i), "select": f"v{i}"} for i in range(50)]
    store.write(name, rows, key="order")
    q = store.table(name, columns=["order", "größe"], where={"select": "v7"})
    assert q.count() == 1
    got = _rows(store, name, key="order")
    assert [r["größe"] for r in got] == [float(i) for i in range(50)]


@pytest.mark.with_mongo
@pytest.mark.parametrize("kind", ["dicts", "pandas", "arrow", "columns"])
def test_write_accepts_rows_dataframes_and_arrow(store, tables, kind):
    name = tables(kind)
    rows = [{"id": i, "v": i * 1.5} for i in range(10)]
    data = {
        "dicts": rows,
        "pandas": pd.DataFrame(rows),
        "arrow": pa.Table.from_pylist(rows),
        "columns": {"id": [r["id"] for r in rows], "v": [r["v"] for r in rows]},
    }[kind]
    assert store.write(name, data, key="id") == 10
    assert store.table(name).count() == 10


@pytest.mark.with_mongo
def test_writing_the_same_rows_twice_duplicates_nothing(store, tables):
    name = tables("idem")
    rows = [{"id": i, "v": float(i)} for i in range(100)]
    store.write(name, rows, key="id")
    store.write(name, rows, key="id")
    assert store.table(name).count() == 100


@pytest.mark.with_mongo
def test_upsert_updates_existing_keys_and_inserts_new_ones(store, tables):
    name = tables("upd")
    store.write(name, [{"id": i, "v": 0.0} for i in range(10)], key="id")
    store.write(name, [{"id": i, "v": 1.0} for i in range(5, 15)], key="id")
    got = {r["id"]: r["v"] for r in _rows(store, name)}
    assert len(got) == 15
    assert got[4] == 0.0 and got[5] == 1.0 and got[14] == 1.0


def test_repeated_dates_and_times_round_trip_and_match_a_where_filter(store, tables):
    # Mostly one timestamp (as a prediction run's created_at) plus NULLs: SQLite renders
    # such columns once per distinct value; the text must be what a filter binds.
    ts = dt.datetime(2024, 3, 1, 12, 30, 45, 123456)
    day = dt.date(2024, 2, 29)
    n = 6
    source = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "ts": pa.array([ts] * (n - 2) + [None, ts.replace(microsecond=0)], pa.timestamp("us")),
            "d": pa.array([day] * (n - 1) + [None], pa.date32()),
            "ms": pa.array([ts.replace(microsecond=123000)] * n, pa.timestamp("ms")),
        }
    )
    name = tables("when")
    store.write(name, source, key="id")
    store.write(name, source, key="id")  # the upsert path over existing rows
    assert _rows(store, name) == source.to_pylist()
    assert store.table(name, where={"ts": ts}).count() == n - 2
    assert store.table(name, where={"d": day}).count() == n - 1


@pytest.mark.with_mongo
def test_upsert_by_composite_key(store, tables):
    name = tables("comp")
    rows = [{"model": m, "id": i, "p": 0.0} for m in ("a", "b") for i in range(5)]
    store.write(name, rows, key=["model", "id"])
    store.write(name, [{"model": "a", "id": 1, "p": 9.0}], key=["model", "id"])
    q = store.table(name, where={"model": "a", "id": 1})
    assert store.table(name).count() == 10
    assert q.to_dataset().take_all()[0]["p"] == 9.0


@pytest.mark.with_mongo
def test_repeated_keys_in_one_write_keep_the_last_row(store, tables):
    name = tables("last")
    store.write(name, [{"id": 1, "v": 1.0}, {"id": 1, "v": 2.0}, {"id": 2, "v": 3.0}], key="id")
    assert {r["id"]: r["v"] for r in _rows(store, name)} == {1: 2.0, 2: 3.0}


def test_existing_table_without_unique_key_is_upserted_by_delete_and_insert(store, tables):
    name = tables("nouniq")
    with store._engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {_q(store, name)} (id integer, v float)"))
    store.write(name, [{"id": i, "v": 0.0} for i in range(10)], key="id")
    store.write(name, [{"id": i, "v": 1.0} for i in range(5)], key="id")
    rows = store.sql(f"SELECT id, v FROM {_q(store, name)}").to_dataset().take_all()
    assert len(rows) == 10
    assert sorted(r["v"] for r in rows) == [0.0] * 5 + [1.0] * 5


def test_a_failing_write_leaves_the_table_unchanged(store, tables):
    name = tables("atomic")
    store.write(name, [{"id": i, "v": "ok"} for i in range(3)], key="id")
    good = [{"id": i, "v": "new"} for i in range(10_000)]
    bad = pa.table({"id": [20_000], "v": ["x"], "extra": [1]})  # unknown column
    with pytest.raises(pr.ColumnNotFound, match="extra"):
        store.write(
            name,
            pa.concat_tables(
                [
                    pa.Table.from_pylist(good).append_column(
                        "extra", pa.nulls(len(good), pa.int64())
                    ),
                    bad,
                ]
            ),
            key="id",
        )
    assert sorted(r["v"] for r in _rows(store, name)) == ["ok"] * 3


def test_a_database_error_mid_write_rolls_back_every_batch(store, tables):
    name = tables("rollback")
    with store._engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {_q(store, name)} "
                "(id integer PRIMARY KEY, v integer CHECK (v < 100))"
            )
        )
    store.write(name, [{"id": 0, "v": 1}], key="id")
    rows = [{"id": i, "v": 1} for i in range(1, 12_000)] + [{"id": 12_000, "v": 500}]
    with pytest.raises(pr.WriteError, match="nothing was written"):
        store.write(name, rows, key="id")  # the last of three batches violates the CHECK
    assert store.table(name).count() == 1


@pytest.mark.with_mongo
def test_null_key_values_are_refused_before_writing(store, tables):
    name = tables("nullkey")
    with pytest.raises(pr.InvalidKey, match="NULL"):
        store.write(name, [{"id": 1, "v": 1}, {"id": None, "v": 2}], key="id")
    assert not store._has_table(name)


@pytest.mark.with_mongo
def test_key_missing_from_the_data_is_refused(store, tables):
    with pytest.raises(pr.InvalidKey, match="not in the data"):
        store.write(tables("nokey"), [{"v": 1}], key="id")


def _q(store, name: str) -> str:
    return store._engine.dialect.identifier_preparer.quote(name)


def test_sqlite_staged_rows_merge_as_a_direct_upsert_writes_them(tmp_path):
    # pr.predict's SQLite path: writers stage Arrow batches in files of their own (ADBC)
    # and one merge upserts them; what lands must equal what store.write stores.
    from pinnacle_ray.datastore.sql.sqlite.staging import StagingFile, merge_staged, staging_folder

    store = pr.connect(tmp_path / "stage.db")
    ts = dt.datetime(2024, 3, 1, 12, 30, 45, 123456)
    rows = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "model": pa.array(["m"] * 6),
            "f": pa.array([1.5, None, -0.25, 2.0, 3.0, 4.0]),
            "ok": pa.array([True, False, None, True, True, False]),
            "s": pa.array(["größe", "", None, "x", "y", "z"]),
            "d": pa.array([dt.date(2024, 2, 29)] * 5 + [None], pa.date32()),
            "ts": pa.array([ts.replace(tzinfo=UTC)] * 4 + [None, None], pa.timestamp("us", "UTC")),
        }
    )
    keys = ["id", "model"]
    store.write("direct", rows, key=keys)
    store.write("merged", rows.slice(0, 0), key=keys)
    store.write("merged", rows.slice(0, 2).set_column(2, "f", pa.array([9.0, 9.0])), key=keys)
    folder = staging_folder(store)
    for part in (rows.slice(0, 3), rows.slice(3)):  # two writers, one file each
        staged = StagingFile(folder)
        staged.append(part)
        staged.close()
    assert merge_staged(store, folder, "merged", keys) == 6
    assert not folder.exists()
    assert store.table("merged").to_arrow().sort_by("id") == store.table("direct").to_arrow()


def test_sqlite_merge_gives_every_row_the_constant_columns_when_they_are_not_staged(tmp_path):
    # pr.predict stages only the columns that vary; the model, version and run time are
    # given to each row by the merge. What lands must equal a direct upsert of full rows.
    from pinnacle_ray.datastore.sql.sqlite.staging import StagingFile, merge_staged, staging_folder

    store = pr.connect(tmp_path / "stage.db")
    ts = dt.datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    shared = pa.table(
        {
            "model": pa.array(["größe-m"]),
            "version": pa.array([3], pa.int64()),
            "ts": pa.array([ts], pa.timestamp("us", "UTC")),
        }
    )
    varying = pa.table({"id": pa.array(range(5), pa.int64()), "f": [0.5, None, 1.0, 2.0, 3.0]})
    full = varying.append_column("model", pa.array(["größe-m"] * 5))
    full = full.append_column("version", pa.array([3] * 5, pa.int64()))
    full = full.append_column("ts", pa.array([ts] * 5, pa.timestamp("us", "UTC")))
    keys = ["id", "model", "version"]
    store.write("direct", full, key=keys)
    store.write("merged", full.slice(0, 0), key=keys)
    store.write("merged", full.slice(0, 2).set_column(1, "f", pa.array([9.0, 9.0])), key=keys)
    folder = staging_folder(store)
    for part in (varying.slice(0, 2), varying.slice(2)):
        staged = StagingFile(folder)
        staged.append(part)
        staged.close()
    assert merge_staged(store, folder, "merged", keys, constants=shared) == 5
    assert store.table("merged").to_arrow().sort_by("id") == store.table("direct").to_arrow()


def test_sqlite_merge_of_more_staging_files_than_sqlite_attaches_is_one_transaction(tmp_path):
    # Twelve writers (SQLite attaches ten databases at most): every row lands, and a bad row
    # in the last file leaves the table as it was, not the first files merged.
    from pinnacle_ray.datastore.sql.sqlite.staging import StagingFile, merge_staged, staging_folder

    store = pr.connect(tmp_path / "many.db")
    store.write("t", pa.table({"id": pa.array([0], pa.int64()), "v": [-1.0]}), key="id")

    def stage(parts: list[pa.Table]):
        folder = staging_folder(store)
        for part in parts:
            staged = StagingFile(folder)
            staged.append(part)
            staged.close()
        return folder

    parts = [
        pa.table({"id": pa.array([i, 100 + i], pa.int64()), "v": [float(i), float(i)]})
        for i in range(12)
    ]
    parts.append(pa.table({"id": pa.array([200], pa.int64())}))  # another column set
    assert merge_staged(store, stage(parts), "t", ["id"]) == 25
    got = store.table("t").to_arrow().sort_by("id").to_pydict()
    assert got["id"] == [*range(12), *range(100, 112), 200]
    assert got["v"] == [float(i) for i in range(12)] * 2 + [None]

    bad = [pa.table({"id": pa.array([i], pa.int64()), "v": [7.0]}) for i in range(11)]
    bad.append(pa.table({"id": pa.array([1], pa.int64()), "v": ["not a number"]}))
    with store._engine.begin() as conn:  # a column that refuses text, as a typed server would
        conn.exec_driver_sql("CREATE TABLE strict_t (id INTEGER PRIMARY KEY, v REAL) STRICT")
        conn.exec_driver_sql("INSERT INTO strict_t VALUES (0, -1.0)")
    with pytest.raises(pr.WriteError, match="nothing was written"):
        merge_staged(store, stage(bad), "strict_t", ["id"])
    assert store.table("strict_t").to_arrow().to_pydict() == {"id": [0], "v": [-1.0]}
