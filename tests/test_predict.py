"""``pr.predict``: registered models over a query, predictions upserted into the datastore.

Models are registered directly through their flavors (no Ray Train start); every run goes
through the session's real local Ray and real databases.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import xgboost as xgb
from predict_helpers import Tripwire
from sklearn.linear_model import LogisticRegression

import pinnacle_ray as pr
from pinnacle_ray.registry import sklearn_flavor
from pinnacle_ray.registry.torch_flavor import save_model

FEATURES = ["a", "b", "c"]
KEY = ["id", "model", "version"]


def _points(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    frame["kind"] = np.where(frame["a"] + frame["b"] > 0, "yes", "no")
    return frame


def _linear(weights: tuple[float, ...] = (1.0, 2.0, 3.0), **kwargs) -> Tripwire:
    module = Tripwire(len(weights), **kwargs)
    with torch.no_grad():
        module.linear.weight.copy_(torch.tensor([weights]))
        module.linear.bias.fill_(0.5)
    return module


def _register_torch(store, tmp_path: Path, name: str = "lin", **kwargs) -> int:
    folder = save_model(tmp_path / f"{name}-torch", _linear(**kwargs), features=FEATURES)
    return store.models.register(name, "torch", folder).version


def _register_sklearn(store, tmp_path: Path, frame: pd.DataFrame) -> None:
    estimator = LogisticRegression().fit(frame[FEATURES], frame["kind"])
    meta = {"features": FEATURES, "label": "kind", "kind": "classifier"}
    folder = tmp_path / "sk"
    sklearn_flavor.save_model(folder, estimator, meta)
    store.models.register("sk", "sklearn", folder)


def _register_xgboost(store, tmp_path: Path, frame: pd.DataFrame) -> None:
    data = xgb.DMatrix(frame[FEATURES], label=(frame["kind"] == "yes").astype(int))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, data, 5)
    folder = tmp_path / "xgb"
    folder.mkdir()
    booster.save_model(str(folder / "model.ubj"))
    meta = {"framework": "xgboost", "features": FEATURES, "objective": "binary:logistic"}
    (folder / "pinnacle.json").write_text(json.dumps(meta))
    store.models.register("xgb", "xgboost", folder)


def _read(store, table: str) -> pd.DataFrame:
    return store.table(table).to_arrow().to_pandas().sort_values("id", ignore_index=True)


@pytest.fixture(autouse=True)
def _trust_helpers(monkeypatch):
    """Tripwire's module is this suite's own: trusted for rebuilding (registry/trust.py)."""
    monkeypatch.setenv("PINNACLE_RAY_TRUSTED_MODULES", "predict_helpers")


@pytest.fixture
def local(tmp_path):
    """An SQLite store holding 2,000 points in table ``pts``."""
    store = pr.connect(tmp_path / "shop.db")
    store.write("pts", _points(2000), key="id")
    yield store
    store.close()


# -- every backend ---------------------------------------------------------------------------
@pytest.mark.with_mongo
def test_rerun_writes_no_duplicate_rows_when_predict_runs_twice(store, tables, tmp_path):
    frame = _points(300)
    data, out = tables("pts"), tables("preds")
    store.write(data, frame, key="id")
    for name in ("pinnacle_models", "pinnacle_checkpoints", "pinnacle_registry_meta"):
        tables(name)  # the store's own registry, dropped after the test
    model = f"{tables.prefix}-lin"
    version = _register_torch(store, tmp_path, name=model)
    for _ in range(2):
        result = pr.predict(model, store.table(data), output=out, batch_size=64)
        assert (result.rows, result.version) == (300, version)
    written = _read(store, out)
    assert len(written) == 300 and written["id"].is_unique
    expected = frame[FEATURES].to_numpy() @ np.array([1.0, 2.0, 3.0]) + 0.5
    np.testing.assert_allclose(written["prediction"], expected, rtol=1e-5)
    assert set(written["model"]) == {model} and set(written["version"]) == {version}


# -- flavors ---------------------------------------------------------------------------------
def test_predict_writes_classes_and_probabilities_when_the_model_is_a_sklearn_classifier(
    local, tmp_path
):
    frame = _points(2000)
    _register_sklearn(local, tmp_path, frame)
    pr.predict("sk", local.table("pts"), output="preds", columns=["kind"])
    written = _read(local, "preds")
    model = local.models.load("sk")
    assert list(written["prediction"]) == list(model.predict(frame))
    proba = model.predict_proba(frame)
    np.testing.assert_allclose(written[["proba_no", "proba_yes"]], proba, rtol=1e-9)
    assert list(written["kind"]) == list(frame["kind"])  # copied through columns=


def test_predict_writes_classes_and_probabilities_when_the_model_is_an_xgboost_booster(
    local, tmp_path
):
    frame = _points(2000)
    _register_xgboost(local, tmp_path, frame)
    result = pr.predict("xgb", local.table("pts"), output="preds")
    written = _read(local, "preds")
    model = local.models.load("xgb")
    assert result.rows == 2000
    assert list(written["prediction"]) == list(model.predict(frame))
    np.testing.assert_allclose(
        written[["proba_0", "proba_1"]], model.predict_proba(frame), rtol=1e-6
    )


def test_each_actor_loads_the_model_once_when_it_predicts_many_batches(local, tmp_path):
    log = tmp_path / "built.log"
    _register_torch(local, tmp_path, log=str(log))
    before = len(log.read_text().splitlines())
    result = pr.predict("lin", local.table("pts"), output="preds", batch_size=100, concurrency=2)
    assert result.rows == 2000  # 20 batches
    assert 1 <= len(log.read_text().splitlines()) - before <= 2  # an actor per block, at most 2


def test_predict_starts_one_actor_when_the_query_holds_one_batch(local, tmp_path):
    log = tmp_path / "built.log"
    _register_torch(local, tmp_path, log=str(log))
    before = len(log.read_text().splitlines())
    result = pr.predict("lin", local.table("pts"), output="preds", batch_size=5000)
    assert result.rows == 2000
    assert len(log.read_text().splitlines()) - before == 1  # no actor started for nothing


def test_predict_uses_the_production_version_when_neither_version_nor_handle_is_given(
    local, tmp_path
):
    _register_torch(local, tmp_path)
    _register_torch(local, tmp_path, weights=(0.0, 0.0, 0.0))
    local.models.promote("lin", version=1)
    assert pr.predict("lin", local.table("pts"), output="preds").version == 1
    assert set(_read(local, "preds")["version"]) == {1}


# -- failures --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_rerun_after_a_failure_halfway_leaves_exactly_one_row_per_key(store, tables, tmp_path):
    data, out, model = tables("pts"), tables("preds"), f"{tables.prefix}-lin"
    version = _register_torch(store, tmp_path, name=model, trip=100.0)
    poisoned = _points(2000)
    poisoned.loc[poisoned["id"] >= 1500, "a"] = 1e6  # the last 5 of 20 batches fail
    store.write(data, poisoned, key="id")
    query = store.table(data)
    with pytest.raises(ValueError, match="tripwire"):
        pr.predict(model, query, output=out, batch_size=100, concurrency=1)
    if store.backend == "sqlite":
        # Staged rows are merged only when every batch succeeded: the failure wrote nothing.
        assert out not in store.tables() or len(_read(store, out)) == 0
        assert not list(tmp_path.glob(".*.staging-*"))  # and left no staging files
        # Rows of an earlier run, as the other backends' failed run leaves them.
        stale = pd.DataFrame({"id": range(1200), "model": model, "version": version})
        stale["prediction"] = -1.0
        stale["created_at"] = pd.Timestamp("2020-01-01", tz="UTC")
        store.write(out, stale, key=["id", "model", "version"])
    partial = len(_read(store, out))
    assert 0 < partial < 2000  # the batches before the bad one were written
    store.write(data, _points(2000), key="id")  # fixed
    assert pr.predict(model, query, output=out, batch_size=100).rows == 2000
    written = _read(store, out)
    assert len(written) == 2000 and written["id"].is_unique
    assert written["created_at"].nunique() == 1  # every row from the rerun


def test_predict_raises_model_not_found_and_writes_nothing_when_the_version_is_unknown(
    local, tmp_path
):
    _register_torch(local, tmp_path)
    with pytest.raises(pr.ModelNotFound, match=r"no version 4; its versions are \[1\]"):
        pr.predict("lin", local.table("pts"), output="preds", version=4)
    with pytest.raises(pr.ModelNotFound, match="no model named 'nope'"):
        pr.predict("nope", local.table("pts"), output="preds")
    assert "preds" not in local.tables()


def test_predict_raises_column_not_found_and_writes_nothing_when_a_feature_is_missing(
    local, tmp_path
):
    _register_torch(local, tmp_path)
    query = local.table("pts", columns=["id", "a", "b"])
    with pytest.raises(pr.ColumnNotFound, match=r"needs feature\(s\) \['c'\]"):
        pr.predict("lin", query, output="preds")
    assert "preds" not in local.tables()


def test_predict_raises_invalid_key_when_the_query_has_no_key(local, tmp_path):
    _register_torch(local, tmp_path)
    with pytest.raises(pr.InvalidKey, match="has no key"):
        pr.predict("lin", local.sql("SELECT a, b, c FROM pts"), output="preds")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"concurrency": -1}, "concurrency must be a positive integer"),
        ({"columns": ["nope"]}, r"columns=\['nope'\] are not in the query"),
        ({"output": ""}, "output table name is empty"),
    ],
)
def test_predict_refuses_bad_arguments_before_reading_when_given_them(
    local, tmp_path, kwargs, message
):
    _register_torch(local, tmp_path)
    args = {"output": "preds", **kwargs}
    with pytest.raises(pr.PinnacleError, match=message):
        pr.predict("lin", local.table("pts"), **args)


# -- streaming -------------------------------------------------------------------------------
class _PeakRSS:
    """The driver's peak resident memory above its level at the start, sampled every 10 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.stop = threading.Event()
        self.peak = 0

    def __enter__(self) -> _PeakRSS:
        gc.collect()
        self.base = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss - self.base)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_driver_memory_stays_flat_when_the_table_is_many_batches_large(tmp_path):
    rows, width, batch = 200_000, 40, 10_000
    path = tmp_path / "big.db"
    columns = [f"f{i}" for i in range(width)]
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"CREATE TABLE big (id INTEGER PRIMARY KEY, {', '.join(c + ' REAL' for c in columns)})"
        )
        values = np.random.default_rng(0).normal(size=(rows, width))
        conn.executemany(
            f"INSERT INTO big VALUES (?, {', '.join('?' * width)})",
            ((i, *map(float, v)) for i, v in enumerate(values)),
        )
    conn.close()
    store = pr.connect(path)
    module = torch.nn.Sequential(torch.nn.Linear(width, 1))
    store.models.register("wide", "torch", save_model(tmp_path / "wide", module, features=columns))
    table_bytes = rows * (width + 1) * 8  # 65.6 MB as Arrow
    pr.predict("wide", store.sql("SELECT * FROM big WHERE id < 5000", key="id"), output="warm")
    with _PeakRSS() as rss:
        result = pr.predict("wide", store.table("big"), output="preds", batch_size=batch)
    assert result.rows == rows
    assert rss.peak < table_bytes / 8, f"driver grew {rss.peak / 2**20:.1f} MiB"
    store.close()
