"""SklearnTrainer: a scikit-learn estimator fit on a datastore query, registered, loaded back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from tabular_data import breast_cancer, diabetes, in_order, iris

import pinnacle_ray as pr
from pinnacle_ray.registry.sklearn_flavor import load_model, save_model


@pytest.mark.with_mongo
def test_classifier_with_string_labels_predicts_exactly_like_in_process_when_loaded(store, tables):
    table = tables("bc")
    features = breast_cancer(store, table)
    train = store.table(table, where={"split": "train"}, key="id")
    valid = store.table(table, where={"split": "valid"}, key="id")
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    result = pr.SklearnTrainer(
        estimator, features=features, label="kind", name=f"{table}-lr", num_cpus=2
    ).fit(train=train, valid=valid)

    assert result.version == 1
    assert result.metrics["valid/accuracy"] > 0.9
    assert {"valid/f1", "valid/roc_auc", "valid/score"} <= set(result.metrics)
    model = store.models.load(f"{table}-lr")
    x_valid, _ = in_order(valid, features, "kind")
    local = clone(estimator).fit(*in_order(train, features, "kind"))
    assert model.classes == ["benign", "malignant"]
    np.testing.assert_array_equal(model.predict(x_valid), local.predict(x_valid))
    np.testing.assert_array_equal(model.predict_proba(x_valid), local.predict_proba(x_valid))


def test_regressor_reports_rmse_mae_r2_and_stores_its_hyper_parameters(store, tables):
    table = tables("diabetes")
    features = diabetes(store, table)
    result = pr.SklearnTrainer(
        Ridge(alpha=0.1), features=features, label="target", name=f"{table}-ridge"
    ).fit(train=store.table(table, key="id"))

    assert result.metrics["valid/r2"] > 0.3
    assert result.metrics["valid/rmse"] > result.metrics["valid/mae"] > 0
    version = store.models.get(f"{table}-ridge")
    assert version.config["params"]["alpha"] == 0.1
    assert version.config["estimator"] == "sklearn.linear_model._ridge.Ridge"
    assert version.lineage["valid"]["holdout"] == "hash of the key"
    assert version.lineage["train"]["table"] == table


@pytest.fixture
def sqlite(tmp_path):
    s = pr.connect(tmp_path / "sk.db")
    yield s
    s.close()


def _blobs(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x @ np.array([2.0, -1.0, 0.5, 1.0]) > 0).astype(np.int64)
    return pa.table({"id": np.arange(n), **{f"x{i}": x[:, i] for i in range(4)}, "y": y})


def test_incremental_fit_streams_many_batches_where_a_full_fit_is_refused(sqlite):
    sqlite.write("blobs", _blobs(20_000), key="id")
    q = sqlite.table("blobs", key="id")
    features = ["x0", "x1", "x2", "x3"]
    # A share so small that holding the whole table is refused; streaming needs no share.
    share = 1e-5
    with pytest.raises(pr.DataTooLarge, match=r"20,000 rows x 5 columns"):
        pr.SklearnTrainer(
            SGDClassifier(random_state=0), features=features, label="y", max_memory_share=share
        ).fit(train=q)

    result = pr.SklearnTrainer(
        SGDClassifier(loss="log_loss", random_state=0),
        features=features,
        label="y",
        name="sgd",
        incremental=True,
        batch_size=1_000,
        epochs=2,
        max_memory_share=share,
    ).fit(train=q)

    assert result.metrics["train/batches"] >= 2 * 16  # 80% of 20,000 rows, 1,000 at a time
    assert result.metrics["valid/accuracy"] > 0.9
    assert sqlite.models.load("sgd").classes == [0, 1]


def test_resume_from_continues_partial_fit_and_records_the_parent(sqlite):
    sqlite.write("blobs", _blobs(4_000), key="id")
    q = sqlite.table("blobs", key="id")
    trainer = pr.SklearnTrainer(
        SGDClassifier(random_state=0),
        features=["x0", "x1", "x2", "x3"],
        label="y",
        name="sgd",
        incremental=True,
        batch_size=500,
    )
    first = trainer.fit(train=q)
    before = sqlite.models.load("sgd").estimator.t_
    second = trainer.fit(train=q, resume_from="sgd")

    assert second.version == 2
    assert sqlite.models.get("sgd").parent_version == 1
    assert sqlite.models.load("sgd").estimator.t_ > before
    assert first.metrics["train/rows"] == second.metrics["train/rows"]


def test_clusterer_fits_without_a_label_and_predicts_the_same_clusters_when_loaded(sqlite):
    features = iris(sqlite, "iris")
    q = sqlite.table("iris", key="id")
    estimator = KMeans(n_clusters=3, n_init=4, random_state=0)
    result = pr.SklearnTrainer(estimator, features=features, name="km", valid_fraction=None).fit(
        train=q
    )

    assert result.metrics["train/silhouette"] > 0.4
    x, _ = in_order(q, features, None)
    local = clone(estimator).fit(x)
    np.testing.assert_array_equal(sqlite.models.load("km").predict(x), local.predict(x))


def test_pipeline_with_an_encoder_trains_on_text_features_and_predicts_on_raw_columns(sqlite):
    rng = np.random.default_rng(1)
    n = 600
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.normal(size=n)
    sold = ((colour == "red") | (size > 1)).astype(np.int64)
    sqlite.write(
        "items", pa.table({"id": np.arange(n), "colour": colour, "size": size, "sold": sold}), "id"
    )
    pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["colour"]), remainder="passthrough"
        ),
        LogisticRegression(),
    )
    pr.SklearnTrainer(pipeline, features=["colour", "size"], label="sold", name="enc").fit(
        train=sqlite.table("items", key="id")
    )

    model = sqlite.models.load("enc")
    rows = {"colour": np.array(["red", "blue"]), "size": np.array([0.0, 0.0])}
    np.testing.assert_array_equal(model.predict(rows), [1, 0])


def test_text_feature_without_an_encoder_is_refused_before_reading(sqlite):
    sqlite.write("items", pa.table({"id": [1, 2], "colour": ["a", "b"], "y": [0, 1]}), "id")
    with pytest.raises(pr.NonNumericFeature, match=r"\['colour'\].*OneHotEncoder"):
        pr.SklearnTrainer(LogisticRegression(), features=["colour"], label="y").fit(
            train=sqlite.table("items")
        )


@pytest.mark.parametrize(
    ("label", "values", "error", "match"),
    [
        ("nope", [0, 1, 0, 1], pr.ColumnNotFound, r"\['nope'\]"),
        ("y", [None, None, None, None], pr.NonFiniteValues, r"every row"),
        ("y", [1, 1, 1, 1], pr.SingleClass, r"single class \[1\]"),
    ],
)
def test_bad_labels_are_refused_with_the_fix(sqlite, label, values, error, match):
    sqlite.write(
        "rows",
        pa.table(
            {"id": [1, 2, 3, 4], "x": [0.1, 0.2, 0.3, 0.4], "y": pa.array(values, pa.int64())}
        ),
        "id",
    )
    with pytest.raises(error, match=match):
        pr.SklearnTrainer(
            LogisticRegression(), features=["x"], label=label, valid_fraction=None
        ).fit(train=sqlite.table("rows"))


def test_nan_features_name_the_column_and_suggest_an_imputer(sqlite):
    sqlite.write(
        "rows", pa.table({"id": [1, 2, 3, 4], "x": [0.1, None, 0.3, None], "y": [0, 1, 0, 1]}), "id"
    )
    with pytest.raises(pr.NonFiniteValues, match=r"'x': 2 row\(s\).*SimpleImputer"):
        pr.SklearnTrainer(LogisticRegression(), features=["x"], label="y", valid_fraction=None).fit(
            train=sqlite.table("rows")
        )


def test_zero_rows_and_impossible_cpus_are_refused_before_any_work(sqlite):
    sqlite.write("rows", pa.table({"id": [1, 2], "x": [0.1, 0.2], "y": [0, 1]}), "id")
    trainer = pr.SklearnTrainer(LogisticRegression(), features=["x"], label="y")
    with pytest.raises(pr.EmptyResult):
        trainer.fit(train=sqlite.table("rows", where={"id": 99}))
    with pytest.raises(pr.ResourceError, match="num_cpus=64"):
        pr.SklearnTrainer(LogisticRegression(), features=["x"], label="y", num_cpus=64).fit(
            train=sqlite.table("rows")
        )
    with pytest.raises(pr.ConfigError, match="partial_fit"):
        pr.SklearnTrainer(LogisticRegression(), features=["x"], label="y", incremental=True)
    with pytest.raises(pr.ConfigError, match="needs label"):
        pr.SklearnTrainer(LogisticRegression(), features=["x"])


def test_loading_refuses_types_that_were_not_saved_with_the_model(tmp_path):
    # math.log1p is outside skops' default trust: the saved model records that it needs it.
    estimator = make_pipeline(FunctionTransformer(np.vectorize(math.log1p)), LogisticRegression())
    estimator.fit(np.array([[1.0], [2.0], [3.0], [4.0]]), [0, 0, 1, 1])
    meta = save_model(tmp_path, estimator, {"features": ["x"], "label": "y"})
    assert "math.log1p" in meta["trusted_types"]
    assert load_model(tmp_path).predict({"x": np.array([4.0])}).tolist() == [1]

    meta_path = Path(tmp_path) / "pinnacle.json"
    meta_path.write_text(json.dumps({**meta, "trusted_types": []}))
    with pytest.raises(pr.IncompatibleCheckpoint, match=r"math\.log1p"):
        load_model(tmp_path)
