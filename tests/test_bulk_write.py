"""Large writes. ``store.write``: large upserts into an existing keyed table take the
Arrow-native bulk path (ADBC staging table + one merge) on PostgreSQL, and a staging file
+ one merge on a SQLite file; the values must be those the general path stores; MariaDB
keeps the general path.
``store.bulk_writer``: many processes write parts of one upsert (what ``pr.predict``'s
actors do), and the datastore decides how the rows travel; a failed write leaves no staged
rows behind and no row of itself in the table where the datastore stages."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

import pinnacle_ray as pr
from pinnacle_ray.datastore.sql import write as sql_write

ROWS = 3_000


def _frame(shift: float) -> pd.DataFrame:
    ids = np.arange(ROWS, dtype=np.int64)
    start = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    return pd.DataFrame(
        {
            "id": ids,
            "model": "m",
            "x": ids * 0.5 + shift,
            "label": [f"row {i} é" for i in ids],
            "flag": ids % 2 == 0,
            "at": [start + dt.timedelta(seconds=int(i), microseconds=int(shift)) for i in ids],
        }
    )


def test_bulk_upsert_updates_rows_like_the_general_path_when_the_write_is_large(
    store, tables, monkeypatch
):
    bulk_calls = []
    real = sql_write.bulk_upsert

    def spy(*args, **kwargs):
        bulk_calls.append(real(*args, **kwargs))
        return bulk_calls[-1]

    monkeypatch.setattr(sql_write, "bulk_upsert", spy)
    name = tables("bulk")
    store.write(name, _frame(0.0), key=["id", "model"])  # creates the table: general path
    assert store.write(name, _frame(7.0), key=["id", "model"]) == ROWS
    got = store.table(name).to_arrow().to_pandas().sort_values("id", ignore_index=True)
    want = _frame(7.0)
    assert list(got["x"]) == list(want["x"]) and list(got["label"]) == list(want["label"])
    assert list(got["flag"].astype(bool)) == list(want["flag"])
    at = pd.to_datetime(got["at"], utc=True)
    assert list(at) == list(pd.to_datetime(want["at"], utc=True))
    expected_bulk = [ROWS] if store.backend == "postgresql" else []
    assert [c for c in bulk_calls if c is not None] == expected_bulk


def _typed(n: int) -> pa.Table:
    """Rows of every type the SQLite staging takes, with NULLs and non-ASCII text."""
    at = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.timezone.utc)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "model": pa.array(["größe"] * n),
            "f": pa.array([None if i % 7 == 0 else i / 3 for i in range(n)], pa.float64()),
            "ok": pa.array([None if i % 5 == 0 else i % 2 == 0 for i in range(n)]),
            "s": pa.array([None if i % 11 == 0 else f"é{i}" * (i % 3) for i in range(n)]),
            "d": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 400) for i in range(n)]),
            "ts": pa.array(
                [None if i % 13 == 0 else at + dt.timedelta(seconds=i) for i in range(n)],
                pa.timestamp("us", "UTC"),
            ),
            "naive": pa.array(
                [at.replace(tzinfo=None) - dt.timedelta(minutes=i) for i in range(n)],
                pa.timestamp("us"),
            ),
        }
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_large_write_into_a_sqlite_table_is_staged_and_stores_what_the_general_path_stores(
    store, tables, monkeypatch
):
    from pinnacle_ray.datastore.sql.sqlite import staged_writer

    staged, real = [], staged_writer.staged_upsert

    def spy(*args, **kwargs):
        staged.append(real(*args, **kwargs))
        return staged[-1]

    monkeypatch.setattr(staged_writer, "staged_upsert", spy)
    rows, keys = _typed(ROWS), ["id", "model"]
    general, bulk = tables("general"), tables("staged")
    for name in (general, bulk):
        store.write(name, rows.slice(0, 1).set_column(2, "f", pa.array([-1.0])), key=keys)
    for start in range(0, ROWS, 1_000):  # writes under the bulk size: the general path
        store.write(general, rows.slice(start, 1_000), key=keys)
    assert staged == []
    assert store.write(bulk, rows, key=keys) == ROWS
    assert staged == [ROWS]  # one staged upsert, over the row already there
    got = store.table(bulk).to_arrow().sort_by("id")
    assert got == store.table(general).to_arrow().sort_by("id")
    assert got.num_rows == ROWS and got.column("f")[0].as_py() is None
    assert _staging_left(store) == []


@pytest.mark.parametrize("rows", [10, ROWS])
def test_upsert_leaves_one_row_per_key_when_written_twice(store, tables, rows):
    name = tables("twice")
    frame = _frame(0.0).head(rows)
    for _ in range(2):
        store.write(name, frame, key=["id", "model"])
    assert store.table(name).count() == rows


# -- store.bulk_writer ---------------------------------------------------------------------
def _rows(start: int, stop: int, x: float = 0.0) -> pa.Table:
    ids = pa.array(range(start, stop), pa.int64())
    return pa.table(
        {
            "id": ids,
            "model": pa.array(["m"] * len(ids)),
            "x": pa.array([i * 0.5 + x for i in range(start, stop)], pa.float64()),
            "label": pa.array([f"row {i} é" for i in range(start, stop)]),
        }
    )


def _staging_left(store) -> list[Path]:
    """Staging folders beside a SQLite file (none elsewhere)."""
    if store.backend != "sqlite":
        return []
    database = Path(store._url.database)
    return sorted(database.parent.glob(f".{database.name}.staging-*"))


def _bulk_write(store, name: str, parts: list[pa.Table], x: float = 0.0) -> None:
    writer = store.bulk_writer(name, key=["id", "model"], shared=pa.table({"model": ["m"]}))
    with writer:
        for rows in parts:
            part = pickle.loads(pickle.dumps(writer)).part()  # as a worker process gets it
            assert part.write(rows) == rows.num_rows
            part.close()


@pytest.mark.with_mongo
def test_bulk_writer_leaves_one_row_per_key_from_the_last_run_when_run_twice(store, tables):
    name = tables("bulk_parts")
    for x in (0.0, 7.0):  # a rerun upserts over the first run
        _bulk_write(store, name, [_rows(0, ROWS, x), _rows(ROWS, 2 * ROWS + 10, x)])
    got = store.table(name).to_arrow().sort_by("id")
    assert got.num_rows == 2 * ROWS + 10
    assert got.column("id").to_pylist() == list(range(2 * ROWS + 10))
    assert got.column("x").to_pylist() == [i * 0.5 + 7.0 for i in range(2 * ROWS + 10)]
    assert set(got.column("model").to_pylist()) == {"m"}
    assert got.column("label")[3].as_py() == "row 3 é"
    assert _staging_left(store) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failed_bulk_write_leaves_no_table_and_no_staged_rows_when_the_run_raises(store, tables):
    name = tables("bulk_failed")
    writer = store.bulk_writer(name, key=["id", "model"])
    with pytest.raises(RuntimeError, match="a worker failed"), writer:
        assert writer.part().write(_rows(0, 100)) == 100
        raise RuntimeError("a worker failed")
    assert name not in store.tables()
    assert _staging_left(store) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_bulk_write_the_database_refuses_writes_no_row_of_it_and_leaves_no_staging(store, tables):
    # The CHECK constraint fails only inside the database: at the merge of the staged rows
    # (SQLite) or of the batch's COPY (PostgreSQL), after every check pinnacle_ray makes.
    name = tables("bulk_refused")
    store.write(name, _rows(0, 10), key=["id", "model"])
    with store._engine.begin() as conn:
        if store.backend == "sqlite":  # SQLite adds no constraint to a table: rebuild it
            conn.execute(sa.text(f"DROP TABLE {name}"))
            conn.execute(
                sa.text(
                    f"CREATE TABLE {name} (id BIGINT NOT NULL, model TEXT NOT NULL, x FLOAT "
                    "CHECK (x < 1000), label TEXT, PRIMARY KEY (id, model))"
                )
            )
        else:
            conn.execute(sa.text(f"ALTER TABLE {name} ADD CONSTRAINT small CHECK (x < 1000)"))
    store.write(name, _rows(0, 10), key=["id", "model"])
    bad = _rows(0, ROWS, x=1.0).set_column(2, "x", pa.array([1.0] * (ROWS - 1) + [5000.0]))
    with pytest.raises(pr.WriteError, match=f"writing to table '{name}'.*nothing was written"):
        _bulk_write(store, name, [bad])
    got = store.table(name).to_arrow().sort_by("id")
    assert got == _rows(0, 10).select(got.column_names)  # the earlier rows, as they were
    assert not [t for t in store.tables() if t.startswith("pinnacle_stage")]
    assert _staging_left(store) == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_postgresql_part_writes_all_its_batches_through_one_connection_as_store_write_would(
    store, tables, monkeypatch
):
    import adbc_driver_postgresql.dbapi as adbc_pg

    opened, real = [], adbc_pg.connect

    def counting(*args, **kwargs):
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(adbc_pg, "connect", counting)
    rows, keys = _typed(ROWS).drop_columns(["d"]), ["id", "model"]  # dates: not staged
    general, staged = tables("general"), tables("staged")
    for start in range(0, ROWS, 1_000):
        store.write(general, rows.slice(start, 1_000), key=keys)
    assert opened == []  # under the one-off bulk size: store.write's general path
    writer = store.bulk_writer(staged, key=keys)
    assert type(writer).__name__ == "CopyWriter"
    with writer:
        part = pickle.loads(pickle.dumps(writer)).part()  # as a worker process gets it
        for start in range(0, ROWS, 500):  # the first batch creates the table
            assert part.write(rows.slice(start, 500)) == 500
        part.write(rows.slice(0, 10).set_column(2, "f", pa.array([-1.0] * 10)))  # upserted
        part.write(rows.slice(0, 0))
        part.close()
    assert len(opened) == 1  # batches 2.. through one connection and staging table
    want = store.table(general).to_arrow().sort_by("id")
    want = want.set_column(2, "f", pa.array([-1.0] * 10 + want.column("f").to_pylist()[10:]))
    assert store.table(staged).to_arrow().sort_by("id") == want
    assert not [t for t in store.tables() if t.startswith("pinnacle_stage")]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_postgresql_part_writes_on_after_a_batch_the_database_refused(store, tables):
    name = tables("refused_then_ok")
    store.write(name, _rows(0, 10), key=["id", "model"])
    with store._engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {name} ADD CONSTRAINT small CHECK (x < 1000)"))
    part = store.bulk_writer(name, key=["id", "model"]).part()
    assert part.write(_rows(0, 100)) == 100
    bad = _rows(100, 200).set_column(2, "x", pa.array([5000.0] * 100))
    with pytest.raises(pr.WriteError, match=f"writing to table '{name}'.*small.*nothing was"):
        part.write(bad)
    assert part.write(_rows(200, 300, x=1.0)) == 100  # the same part, after the rollback
    part.close()
    got = store.table(name).to_arrow().sort_by("id")
    assert got.column("id").to_pylist() == [*range(100), *range(200, 300)]
    assert got.column("x").to_pylist()[-1] == 299 * 0.5 + 1.0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_postgresql_part_upserts_into_a_table_without_a_unique_key_by_delete_and_insert(
    store, tables
):
    name = tables("no_key")
    with store._engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id BIGINT, model TEXT, x FLOAT, label TEXT)"))
    for x in (0.0, 7.0):  # the second run replaces the first run's rows
        part = store.bulk_writer(name, key=["id", "model"]).part()
        assert part.write(_rows(0, ROWS, x)) == ROWS
        part.close()
    got = store.table(name).to_arrow().sort_by("id")
    assert got.column("id").to_pylist() == list(range(ROWS))
    assert got.column("x").to_pylist() == [i * 0.5 + 7.0 for i in range(ROWS)]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_postgresql_parts_writing_the_same_keys_at_once_leave_one_row_per_key(store, tables):
    # Two runs of the same model version at once: each part tries a plain INSERT first; the
    # one that finds the other's keys rolls back and merges, so both succeed.
    import threading

    name = tables("same_keys")
    store.write(name, _rows(0, 0), key=["id", "model"])  # the table, with its key, empty
    writer = store.bulk_writer(name, key=["id", "model"])
    errors: list[BaseException] = []
    merged: list[bool] = []  # per part: whether it met the other's keys and merged

    def run(x: float) -> None:
        part = pickle.loads(pickle.dumps(writer)).part()
        try:
            for start in range(0, 4 * ROWS, ROWS):
                part.write(_rows(start, start + ROWS, x))
            merged.append(part._stage._conflicts)
        except BaseException as exc:  # reported below, with the other thread's outcome
            errors.append(exc)
        finally:
            part.close()

    threads = [threading.Thread(target=run, args=(x,)) for x in (1.0, 2.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert True in merged  # the second to commit a key found it there and merged
    got = store.table(name).to_arrow().sort_by("id")
    assert got.column("id").to_pylist() == list(range(4 * ROWS))
    x = got.column("x").to_pylist()
    assert all(v - i * 0.5 in (1.0, 2.0) for i, v in enumerate(x))


@pytest.mark.with_mongo
def test_bulk_writer_refuses_a_bad_table_name_or_no_key_before_anything_is_written(store, tables):
    with pytest.raises(pr.InvalidIdentifier, match="name is empty"):
        store.bulk_writer(" ", key="id")
    with pytest.raises(pr.InvalidIdentifier, match="NUL character"):
        store.bulk_writer(tables("ok"), key="i\x00d")
    with pytest.raises(pr.InvalidKey, match=r"bulk_writer needs key=<column>.*got \[\]"):
        store.bulk_writer(tables("nokey"), key=[])
    assert _staging_left(store) == []
