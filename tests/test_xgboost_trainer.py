"""XGBoostTrainer: distributed XGBoost on Ray Train from a datastore query, registered."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb
from ray.train import ScalingConfig
from sklearn.metrics import accuracy_score, r2_score
from tabular_data import breast_cancer, diabetes, in_order

import pinnacle_ray as pr
from pinnacle_ray.registry.xgboost_flavor import load_booster


# SQLite only: on the other backends the same Ray Data read feeds the same trainer code
# (their reads are tested in test_read.py and test_mongo.py, their end-to-end fits in
# test_sklearn_trainer.py, and on MongoDB in test_mongo.py too); a two-worker Ray Train run
# per backend cost ~15-25 s each and tested the trainer, not the backend.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_workers_early_stop_and_register_the_best_round(store, tables):
    table = tables("bc")
    features = breast_cancer(store, table)
    train = store.table(table, where={"split": "train"}, key="id")
    valid = store.table(table, where={"split": "valid"}, key="id")
    name = f"{table}-xgb"

    result = pr.XGBoostTrainer(
        params={"objective": "binary:logistic", "eval_metric": ["auc", "logloss"], "eta": 0.5},
        features=features,
        label="target",
        num_boost_round=200,
        early_stopping_rounds=5,
        scaling_config=ScalingConfig(num_workers=2),
        name=name,
    ).fit(train=train, valid=valid)

    assert {"train/logloss", "valid/logloss", "valid/auc"} <= set(result.metrics)
    assert result.metrics["round"] < 200  # stopped early
    best = store.models.get(name, handle="best")
    latest = store.models.get(name, handle="latest")
    assert best.step < latest.step == result.metrics["round"]
    assert best.metrics["valid/logloss"] <= result.metrics["valid/logloss"]

    model = store.models.load(name)  # the version's artifact is the best round
    x_valid, y_valid = in_order(valid, features, "target")
    assert accuracy_score(y_valid, model.predict(x_valid)) > 0.9
    booster = load_booster(store.models.checkpoint_dir(name, handle="best"))
    assert booster.num_boosted_rounds() == best.step
    expected = booster.predict(xgb.DMatrix(x_valid.to_numpy(np.float32), feature_names=features))
    np.testing.assert_array_equal(model.predict_proba(x_valid)[:, 1], expected)


@pytest.fixture
def sqlite(tmp_path):
    s = pr.connect(tmp_path / "xgb.db")
    yield s
    s.close()


def test_continued_boosting_adds_rounds_on_new_rows_only_to_the_registered_booster(sqlite):
    features = diabetes(sqlite, "diabetes")
    q = sqlite.table("diabetes", key="id")
    trainer = pr.XGBoostTrainer(
        params={"objective": "reg:squarederror", "max_depth": 3, "eta": 0.1},
        features=features,
        label="target",
        num_boost_round=30,
        scaling_config=ScalingConfig(num_workers=2),
        name="dia",
    )
    first = trainer.fit(train=q)
    assert first.metrics["valid/rmse"] > 0
    x, y = in_order(q, features, "target")
    assert r2_score(y, sqlite.models.load("dia").predict(x)) > 0.3
    # New rows arrive (the first 60 again under new keys 442..501): continue on those only.
    new = x.iloc[:60].assign(target=y[:60], split="train")
    new.insert(0, "id", np.arange(442, 502, dtype=np.int64))
    sqlite.write("diabetes", new, key="id")

    second = trainer.fit(train=sqlite.table("diabetes", key="id").since("dia"), resume_from="dia")

    assert second.version == 2 and second.metrics["round"] == 60
    assert sqlite.models.load("dia").booster.num_boosted_rounds() == 60
    assert sqlite.models.load("dia", handle="latest").booster.num_boosted_rounds() == 60
    version = sqlite.models.get("dia")
    assert version.parent_version == 1
    assert version.lineage["resumed_from"]["rounds"] == 30
    assert version.lineage["train"]["key_min"] == 442


def test_missing_features_are_missing_values_and_text_features_are_categories(sqlite):
    rng = np.random.default_rng(0)
    n = 800
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.normal(size=n)
    size[::7] = np.nan  # NULL in the database: XGBoost's missing value
    y = np.where(colour == "red", 3.0, 0.0) + np.nan_to_num(size)
    sqlite.write(
        "items", pa.table({"id": np.arange(n), "colour": colour, "size": size, "y": y}), "id"
    )
    pr.XGBoostTrainer(
        params={"objective": "reg:squarederror", "max_cat_to_onehot": 4},
        features=["colour", "size"],
        label="y",
        num_boost_round=40,
        enable_categorical=True,
        name="cat",
    ).fit(train=sqlite.table("items", key="id"))

    model = sqlite.models.load("cat")
    assert model.categories == {"colour": ["blue", "green", "red"]}
    rows = {"colour": np.array(["red", "blue", "purple"]), "size": np.array([0.0, 0.0, np.nan])}
    red, blue, unseen = model.predict(rows)
    assert red - blue > 2.5
    assert np.isfinite(unseen)


def test_bad_inputs_are_refused_before_training_starts(sqlite):
    sqlite.write(
        "rows",
        pa.table(
            {
                "id": [1, 2, 3],
                "x": [0.1, 0.2, 0.3],
                "word": ["a", "b", "c"],
                "one": [1, 1, 1],
                "gap": pa.array([1.0, None, 2.0]),
            }
        ),
        "id",
    )
    q = sqlite.table("rows", key="id")
    base = {"features": ["x"], "valid_fraction": None}
    with pytest.raises(pr.TooFewRows, match="3 row"):
        pr.XGBoostTrainer(label="one", scaling_config=ScalingConfig(num_workers=4), **base).fit(
            train=q
        )
    with pytest.raises(pr.SingleClass):
        pr.XGBoostTrainer(params={"objective": "binary:logistic"}, label="one", **base).fit(train=q)
    with pytest.raises(pr.NonFiniteValues, match="'gap': 1 row"):
        pr.XGBoostTrainer(label="gap", **base).fit(train=q)
    with pytest.raises(pr.NonNumericFeature, match="enable_categorical=True"):
        pr.XGBoostTrainer(features=["word"], label="one").fit(train=q)
    with pytest.raises(pr.ColumnNotFound):
        pr.XGBoostTrainer(label="nope", **base).fit(train=q)
    with pytest.raises(pr.ConfigError, match="early_stopping_rounds needs validation"):
        pr.XGBoostTrainer(label="gap", early_stopping_rounds=2, **base).fit(
            train=sqlite.table("rows", where={"id": 1})
        )


def test_workers_agree_to_report_when_only_one_worker_clock_says_a_report_is_due():
    # A Ray Train report waits for every worker and an XGBoost round waits for every
    # worker: one worker reporting while the other boosts deadlocks (seen on a loaded
    # machine, 1M rows). The clock-based "once a second" decision must be the same on all.
    import multiprocessing
    import threading

    from xgboost.tracker import RabitTracker
    from xgboost_collective import report_decision

    tracker = RabitTracker(n_workers=2, host_ip="127.0.0.1", sortby="task")
    tracker.start()
    threading.Thread(target=tracker.wait_for, daemon=True).start()
    args = {"n_workers": 2, **tracker.worker_args()}
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    workers = [
        spawn.Process(target=report_decision, args=(rank, args, rank == 0, out)) for rank in (0, 1)
    ]
    for worker in workers:
        worker.start()
    try:
        decisions = dict(out.get(timeout=120) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert decisions == {0: True, 1: True}
