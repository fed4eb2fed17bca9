"""The seed's managed TorchTrainer parameters, through the public API: transform,
collate_fn, signature, vector and bytes features, metric_values, loader_kwargs and
prefetching, preprocess/postprocess stored by import path and applied on load and predict.

Two trained models are shared by the module (each Ray Train start costs 10-30 s here): an
embedding + number model on PostgreSQL (a list column; positional inputs; two workers; a
custom metric listened to) and an image + number model on SQLite (bytes decoded by a
stored preprocess; a transform; a collate_fn; keyword inputs; a postprocess).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
import torch_seed_helpers as helpers
from ray.train import ScalingConfig

import pinnacle_ray as pr

TRUSTED = ["torch_seed_helpers"]
EMB_WEIGHTS = np.array([0.5, -1.0, 1.5, 2.0])


def _embedding_rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 4))
    num = rng.normal(size=n)
    y = emb @ EMB_WEIGHTS + 2.0 * num
    return pa.table(
        {
            "id": np.arange(n),
            "emb": pa.array(list(emb), pa.list_(pa.float64())),
            "num": num,
            "y": y,
            "split": np.where(np.arange(n) % 4 == 0, "valid", "train"),
        }
    )


def _image_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    num = rng.uniform(size=n)
    y = 0.5 * pixels.mean(axis=1) / 255.0 + 0.3 * num
    return pd.DataFrame(
        {"id": np.arange(n), "img": [p.tobytes() for p in pixels], "num": num, "y": y}
    )


@pytest.fixture(scope="module")
def embedding_run():
    """TwoInputs on PostgreSQL: emb (list<double>) and num as two positional inputs."""
    from conftest import Tables, _server_store

    store = _server_store("postgresql")
    tables = Tables(store)
    table = tables("emb")
    store.write(table, _embedding_rows(800, seed=1), key="id")
    name = f"{tables.prefix}-two-inputs"
    torch.manual_seed(0)
    trainer = pr.TorchTrainer(
        model=helpers.TwoInputs(4),
        objective="mse",
        features=["emb", "num"],
        label="y",
        signature="*args",
        optimizer_kwargs={"lr": 0.1},
        epochs=6,
        validation_interval=5,
        metric_values={"mae": helpers.mean_absolute_error, "rows": helpers.rows_seen},
        listen="valid/mae",
        mode="min",
        loader_kwargs={"batch_size": 32, "drop_last": True},
        prefetch_factor=1,
        scaling_config=ScalingConfig(num_workers=2),
        name=name,
    )
    result = trainer.fit(
        train=store.table(table, where={"split": "train"}),
        valid=store.table(table, where={"split": "valid"}),
    )
    yield store, table, name, result
    tables.drop_all()
    store.close()


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """ImageAndNumber on SQLite: bytes decoded by a stored preprocess, called by keyword."""
    store = pr.connect(tmp_path_factory.mktemp("seed") / "images.db")
    store.write("images", _image_rows(600, seed=2), key="id")
    torch.manual_seed(0)
    trainer = pr.TorchTrainer(
        model=helpers.ImageAndNumber(4),
        objective="mse",
        features=["pixels", "num"],
        label="y",
        preprocess=helpers.decode_pixels,
        postprocess="torch_seed_helpers:to_percent",
        transform=helpers.stamp_process,
        collate_fn=helpers.pixels_and_number,
        signature="**kwargs",
        optimizer_kwargs={"lr": 0.02},
        epochs=8,
        loader_kwargs={"batch_size": 16, "local_shuffle_buffer_size": 64},
        scaling_config=ScalingConfig(num_workers=1),
        name="pixels",
    )
    result = trainer.fit(train=store.table("images"))
    yield store, result
    store.close()


# -- embedding + number, positional, custom metric (PostgreSQL, two workers) ---------------
@pytest.mark.timeout(600)
def test_custom_metric_is_reported_listened_and_stored_when_metric_values_are_given(
    embedding_run,
):
    store, _, name, result = embedding_run
    reported = [m for _, m in result.record.reported]
    assert all("valid/mae" in m and "valid/rows" in m for m in reported)
    # Every report computed over the whole validation set: both workers' rows gathered.
    assert {m["valid/rows"] for m in reported} == {200.0}
    best = min(reported, key=lambda m: m["valid/mae"])
    version = store.models.get(name)
    assert version.metrics["valid/mae"] == pytest.approx(best["valid/mae"])
    assert store.models.get(name, handle="best").step == best["step"]
    assert best["valid/mae"] < reported[0]["valid/mae"]  # it learned


@pytest.mark.timeout(600)
def test_loaded_two_input_model_reproduces_the_reported_metric_when_called_positionally(
    embedding_run,
):
    store, table, name, _ = embedding_run
    model = store.models.load(name, handle="best", trusted_modules=TRUSTED)
    assert model.signature == "*args"
    rows = store.table(table, where={"split": "valid"}).to_arrow()
    predicted = model.predict(rows)
    mae = np.abs(predicted - rows.column("y").to_numpy()).mean()
    assert mae == pytest.approx(store.models.get(name).metrics["valid/mae"], rel=1e-4)
    assert mae < 0.5  # the label's spread is ~3.3


@pytest.mark.timeout(600)
def test_loader_kwargs_drop_the_last_batch_and_prefetch_factor_sets_prefetching(embedding_run):
    store, _, name, result = embedding_run
    # 600 training rows, two shards of 300, batches of 32: 9 full batches per worker.
    assert result.metrics["train/rows"] == 2 * 9 * 32
    settings = store.models.get(name).config["settings"]
    assert settings["prefetch_batches"] == 1 and settings["drop_last"] is True
    assert settings["batch_size"] == 32


# -- image bytes + number, keyword, preprocess/postprocess (SQLite, one worker) --------------
@pytest.mark.timeout(600)
def test_transform_runs_in_ray_data_and_collate_fn_on_the_worker_when_both_are_given(image_run):
    # pixels_and_number (the collate_fn) needs the column stamp_process (the transform)
    # adds, and raises if the transform ran in the training worker's own process: the run
    # reaching its end is the proof.
    _, result = image_run
    assert result.metrics["epoch"] == 7
    assert result.metrics["valid/loss"] < 0.01  # the label's variance is ~0.01


@pytest.mark.timeout(600)
def test_loaded_model_predicts_from_raw_bytes_when_preprocess_and_postprocess_are_stored(
    image_run,
):
    store, _ = image_run
    meta = store.models.get("pixels")
    model = store.models.load("pixels", trusted_modules=TRUSTED)
    assert model.meta["preprocess"] == "torch_seed_helpers:decode_pixels"
    assert model.meta["postprocess"] == "torch_seed_helpers:to_percent"
    fresh = _image_rows(50, seed=9)
    predicted = model.predict(fresh[["id", "img", "num"]])  # raw rows: bytes, no label
    error = np.abs(predicted - 100.0 * fresh["y"].to_numpy())
    assert error.mean() < 8.0, error.mean()  # percentages; the label spans ~20 to ~55
    assert meta.version == 1


@pytest.mark.timeout(600)
def test_predict_writes_postprocessed_predictions_from_raw_rows_when_preprocess_is_stored(
    image_run,
):
    store, _ = image_run
    store.write("new_images", _image_rows(40, seed=11), key="id")
    written = pr.predict(
        "pixels",
        store.table("new_images", columns=["id", "img", "num"]),
        output="pixel_predictions",
        trusted_modules=TRUSTED,
    )
    assert written.rows == 40
    out = store.table("pixel_predictions").to_arrow().to_pandas().sort_values("id")
    loaded = store.models.load("pixels", trusted_modules=TRUSTED)
    expected = loaded.predict(_image_rows(40, seed=11)[["id", "img", "num"]])
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-5)


# -- refused before any worker starts ------------------------------------------------------
def _trainer(**kw):
    args = {
        "model": torch.nn.Linear(2, 1),
        "features": ["a", "b"],
        "label": "y",
        "name": "refused",
    }
    return pr.TorchTrainer(**(args | kw))


def _local(x):
    return x


def test_preprocess_is_refused_when_it_is_a_lambda_or_a_closure():
    with pytest.raises(pr.ConfigError, match=r"preprocess=a lambda cannot be stored"):
        _trainer(preprocess=lambda batch: batch)

    def inner(batch):
        return batch

    with pytest.raises(pr.ConfigError, match=r"postprocess=.*<locals>.*cannot be stored"):
        _trainer(postprocess=inner)
    with pytest.raises(pr.ConfigError, match=r"preprocess='nowhere:fn' cannot be imported"):
        _trainer(preprocess="nowhere:fn")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"signature": "args"}, r"signature='args' is not known; use one of \['singleton'"),
        ({"loader_kwargs": {"shuffle": True}}, r"loader_kwargs \['shuffle'\] are not known"),
        (
            {"prefetch_size": 2, "prefetch_factor": 4},
            r"prefetch_size=2, prefetch_factor=4 conflict",
        ),
        (
            {"batch_size": 64, "loader_kwargs": {"batch_size": 32}},
            r"batch_size=64 conflicts with loader_kwargs\['batch_size'\]=32",
        ),
        ({"metric_values": {"loss": np.mean}}, r"metric_values name 'loss' clashes"),
        ({"metric_values": {"f1": 3}}, r"metric_values\['f1'\] must be a function"),
        (
            {"metric_values": {"mae": helpers.mean_absolute_error}, "listen": "valid/mae"},
            r"listen='valid/mae' is one of your metric_values: say whether higher is better",
        ),
        (
            {"shuffle": False, "loader_kwargs": {"local_shuffle_buffer_size": 64}},
            r"loader_kwargs\['local_shuffle_buffer_size'\] sizes the shuffle that shuffle=False",
        ),
        ({"transform": "decode"}, r"transform must be a function over a batch"),
        ({"collate_fn": 1}, r"collate_fn must be a function over a batch"),
    ],
)
def test_bad_seed_parameters_are_refused_naming_the_parameter_when_the_trainer_is_built(
    kwargs, message
):
    with pytest.raises(pr.ConfigError, match=message):
        _trainer(**kwargs)


def test_listening_to_an_unknown_metric_is_refused_listing_the_custom_ones():
    with pytest.raises(pr.MetricNotReported, match=r"'valid/mae'\]"):
        _trainer(metric_values={"mae": helpers.mean_absolute_error}, listen="valid/nope")


def test_seed_parameters_are_refused_for_a_custom_loop_naming_them():
    with pytest.raises(pr.ConfigError, match=r"\['transform', 'metric_values'\] configure"):
        pr.TorchTrainer(
            _local, transform=helpers.stamp_process, metric_values={"m": np.mean}, name="x"
        )


def test_metric_values_without_validation_are_refused_before_training(tmp_path):
    store = pr.connect(tmp_path / "m.db")
    store.write(
        "t", pd.DataFrame({"id": [1, 2, 3], "a": [1.0, 2, 3], "b": 1.0, "y": 0.0}), key="id"
    )
    trainer = _trainer(metric_values={"mae": helpers.mean_absolute_error}, listen=None)
    with pytest.raises(pr.ConfigError, match=r"metric_values \['mae'\] are computed on the"):
        trainer.fit(train=store.table("t"))
    assert store.models.list() == []
    store.close()


def test_a_bytes_feature_is_refused_with_a_hint_to_transform_it_when_none_is_given(tmp_path):
    store = pr.connect(tmp_path / "b.db")
    store.write("images", _image_rows(5, seed=0), key="id")
    trainer = _trainer(features=["img", "num"])
    with pytest.raises(pr.NonNumericFeature, match=r"'img' has type binary.*transform="):
        trainer.fit(train=store.table("images"))
    store.close()


# -- units: input shapes and stored functions (no Ray) -------------------------------------
def test_inputs_are_shaped_per_signature_when_features_mix_scalars_vectors_and_images():
    from pinnacle_ray.registry.torch_inputs import model_inputs

    batch = {
        "num": np.arange(3.0),
        "emb": np.array([np.ones(4), np.zeros(4), np.ones(4)], dtype=object),  # list cells
        "img": np.zeros((3, 2, 2)),
    }
    assert model_inputs(batch, ["num", "emb", "img"]).shape == (3, 1 + 4 + 4)
    assert model_inputs(batch, ["img"]).shape == (3, 2, 2)
    assert model_inputs(batch, ["num"]).shape == (3, 1)
    positional = model_inputs(batch, ["emb", "num"], "*args")
    assert [a.shape for a in positional] == [(3, 4), (3, 1)]
    keyword = model_inputs(batch, ["img", "num"], "**kwargs")
    assert {k: v.shape for k, v in keyword.items()} == {"img": (3, 2, 2), "num": (3, 1)}
    with pytest.raises(pr.NonFiniteValues, match=r"'num': 1 row"):
        model_inputs({"num": np.array([1.0, np.nan])}, ["num"])
    with pytest.raises(pr.NonNumericFeature, match=r"'img'.*transform="):
        model_inputs({"img": np.array([b"ab", b"cd"], dtype=object)}, ["img"])


def test_stored_functions_load_only_plain_functions_of_trusted_modules():
    from pinnacle_ray.registry.code_refs import import_path
    from pinnacle_ray.registry.torch_flavor import TorchModel

    assert import_path(helpers.decode_pixels, "preprocess") == "torch_seed_helpers:decode_pixels"
    module = torch.nn.Linear(2, 1)
    with pytest.raises(pr.UnsafeArtifact, match=r"'torch_seed_helpers'"):
        TorchModel(module, {"preprocess": "torch_seed_helpers:decode_pixels"})
    with pytest.raises(pr.RegistryError, match=r"'os:system' is not a function defined in 'os'"):
        TorchModel(module, {"postprocess": "os:system"}, trusted_modules=["os"])
    model = TorchModel(module, {"postprocess": "torch_seed_helpers:to_percent"}, TRUSTED)
    assert model.postprocess is helpers.to_percent


def test_list_columns_pass_the_schema_check_only_for_the_torch_loop():
    from pinnacle_ray.trainers.features import check_columns

    schema = pa.schema([("emb", pa.list_(pa.float64())), ("img", pa.binary()), ("y", pa.float64())])
    check_columns(schema, ["emb"], "y", vectors=True)  # torch: an embedding
    with pytest.raises(pr.NonNumericFeature, match=r"'emb' has type list<item: double>"):
        check_columns(schema, ["emb"], "y")  # scikit-learn, XGBoost: one number per column
    with pytest.raises(pr.NonNumericFeature, match=r"'img' has type binary.*transform="):
        check_columns(schema, ["img"], "y", vectors=True)
