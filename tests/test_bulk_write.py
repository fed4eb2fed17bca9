"""Large upserts into an existing keyed table take the Arrow-native bulk path (ADBC staging
table + one merge) on PostgreSQL; the values must be those the general path stores. SQLite
and MariaDB keep the general path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

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


@pytest.mark.parametrize("rows", [10, ROWS])
def test_upsert_leaves_one_row_per_key_when_written_twice(store, tables, rows):
    name = tables("twice")
    frame = _frame(0.0).head(rows)
    for _ in range(2):
        store.write(name, frame, key=["id", "model"])
    assert store.table(name).count() == rows
