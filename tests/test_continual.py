"""Continued training on new rows: ``q.since(model)`` + ``fit(resume_from=model)``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import SGDRegressor

import pinnacle_ray as pr

FEATURES = ["x1", "x2"]


def _rows(start: int, stop: int) -> pd.DataFrame:
    ids = np.arange(start, stop, dtype=np.int64)
    rng = np.random.default_rng(start)
    x1, x2 = rng.normal(size=len(ids)), rng.normal(size=len(ids))
    return pd.DataFrame({"id": ids, "x1": x1, "x2": x2, "y": 2.0 * x1 - x2 + 0.5})


def _registered(store, name: str, tmp_path, lineage: dict) -> int:
    folder = tmp_path / f"{name}-artifact"
    folder.mkdir()
    (folder / "model.txt").write_text("placeholder")
    return store.models.register(name, "sklearn", folder, lineage=lineage).version


@pytest.fixture
def sqlite(tmp_path):
    s = pr.connect(tmp_path / "continual.db")
    s.write("points", _rows(0, 200), key="id")
    yield s
    s.close()


@pytest.mark.with_mongo
def test_since_reads_only_rows_past_the_trained_watermark_on_every_backend(store, tables, tmp_path):
    table = tables("points")
    store.write(table, _rows(0, 30), key="id")
    _registered(store, f"{table}-m", tmp_path, {"train": {"key": "id", "key_max": 19}})

    new = store.table(table, key="id").since(f"{table}-m")

    assert new.count() == 10
    assert sorted(new.to_arrow().column("id").to_pylist()) == list(range(20, 30))
    assert new.lineage()["since"] == {"model": f"{table}-m", "version": 1, "key": "id", "after": 19}


@pytest.mark.with_mongo
def test_since_compares_timestamp_keys_as_timestamps(store, tables, tmp_path):
    table = tables("events")
    start = dt.datetime(2026, 1, 1)
    stamps = [start + dt.timedelta(hours=h) for h in range(6)]
    store.write(table, pd.DataFrame({"at": stamps, "v": np.arange(6.0)}), key="at")
    watermark = stamps[3].isoformat()  # as lineage JSON stores it
    _registered(store, f"{table}-m", tmp_path, {"train": {"key": "at", "key_max": watermark}})

    assert store.table(table, key="at").since(f"{table}-m").count() == 2


@pytest.mark.parametrize("backend", ["sqlite", "mongo"], indirect=True)
def test_since_is_refused_when_the_version_records_no_key_watermark(store, tables, tmp_path):
    table = tables("points")
    store.write(table, _rows(0, 10), key="id")
    _registered(store, f"{table}-plain", tmp_path, {"train": None})
    with pytest.raises(pr.ConfigError, match="records no key watermark"):
        store.table(table).since(f"{table}-plain")


@pytest.mark.parametrize("backend", ["sqlite", "mongo"], indirect=True)
def test_since_is_refused_when_the_query_has_another_key(store, tables, tmp_path):
    table = tables("points")
    store.write(table, _rows(0, 10), key="id")
    _registered(store, f"{table}-x1", tmp_path, {"train": {"key": "x1", "key_max": 0.5}})
    with pytest.raises(pr.InvalidKey, match=r"trained on key 'x1'.*key is 'id'"):
        store.table(table).since(f"{table}-x1")


def test_since_is_refused_when_the_query_has_no_key(sqlite, tmp_path):
    _registered(sqlite, "keyed", tmp_path, {"train": {"key": "id", "key_max": 10}})
    with pytest.raises(pr.InvalidKey, match="needs a query with a key"):
        sqlite.sql("SELECT x1, x2, y FROM points").since("keyed")


def test_sklearn_partial_fit_continues_on_new_rows_only_with_its_parent_recorded(sqlite):
    trainer = pr.SklearnTrainer(
        SGDRegressor(random_state=0), features=FEATURES, label="y", incremental=True, name="sgd"
    )
    first = trainer.fit(train=sqlite.table("points"))
    sqlite.write("points", _rows(200, 260), key="id")

    second = trainer.fit(train=sqlite.table("points").since("sgd"), resume_from="sgd")

    version = sqlite.models.get("sgd", version=second.version)
    assert (first.version, second.version, version.parent_version) == (1, 2, 1)
    assert version.lineage["train"]["since"]["after"] == 199
    assert version.lineage["train"]["key_min"] == 200 and version.lineage["train"]["key_max"] == 259
    assert second.metrics["train/rows"] + second.metrics["valid/rows"] == 60


@pytest.mark.parametrize("backend", ["mongo"], indirect=True)
def test_sklearn_continues_on_documents_past_an_objectid_watermark_when_the_key_is_id(
    store, tables
):
    collection, name = tables("points"), f"{tables.prefix}-sgd"
    store.write(collection, _rows(0, 200), key="id")  # each document gets a new ObjectId
    trainer = pr.SklearnTrainer(
        SGDRegressor(random_state=0), features=FEATURES, label="y", incremental=True, name=name
    )
    first = trainer.fit(train=store.find(collection))  # sharded by _id
    store.write(collection, _rows(200, 260), key="id")

    new = store.find(collection).since(name)
    second = trainer.fit(train=new, resume_from=name)

    assert sorted(new.to_arrow().column("id").to_pylist()) == list(range(200, 260))
    train = store.models.get(name, version=second.version).lineage["train"]
    last_old = store.find(collection, filter={"id": 199}).to_arrow().column("_id")[0].as_py()
    trained_on = store.models.get(name, version=first.version).lineage["train"]
    assert train["since"]["after"] == last_old == trained_on["key_max"]
    assert train["key_min"] > last_old and train["rows"] == 60


# XGBoost's continued boosting on new rows only (since + resume_from) is in
# test_xgboost_trainer.py, on the fit that also checks resuming the registered booster.


def test_torch_continues_weights_and_optimizer_on_new_rows_only(sqlite):
    def trainer(epochs: int) -> pr.TorchTrainer:
        torch.manual_seed(0)
        return pr.TorchTrainer(
            model=torch.nn.Linear(2, 1),
            features=FEATURES,
            label="y",
            optimizer_kwargs={"lr": 0.05},
            batch_size=20,
            epochs=epochs,
            name="lin",
        )

    first = trainer(epochs=1).fit(train=sqlite.table("points"))
    sqlite.write("points", _rows(200, 300), key="id")

    # epochs count from the first run, so one more epoch is epochs=2
    second = trainer(epochs=2).fit(train=sqlite.table("points").since("lin"), resume_from="lin")

    version = sqlite.models.get("lin", version=second.version)
    assert version.parent_version == first.version == 1
    assert version.lineage["train"]["key_min"] == 200
    # the step counter (saved with the optimizer state) carries on from the first run
    new_steps = second.metrics["step"] - first.metrics["step"]
    assert 0 < new_steps < first.metrics["step"]
    # started from v1's weights and moments: a few more steps fit every row better
    rows = _rows(0, 300)

    def mse(version: int) -> float:
        predicted = sqlite.models.load("lin", version=version).predict(rows[FEATURES])
        return float(np.mean((predicted - rows["y"].to_numpy()) ** 2))

    assert mse(second.version) < mse(first.version)
