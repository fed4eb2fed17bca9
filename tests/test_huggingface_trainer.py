"""HuggingFaceTrainer: fine-tune a transformers model on text rows, registered and loadable.

The model is a 2-layer BERT (hidden size 32) built here and the tokenizer a WordLevel one
built from the rows' vocabulary: nothing is downloaded. Fits are shared between tests
through module-scoped fixtures (each Ray Train start costs ~10-15 s here).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ray.train import ScalingConfig
from text_data import sentiment_rows, tiny_bert

import pinnacle_ray as pr

ARGS = {
    "learning_rate": 5e-3,
    "per_device_train_batch_size": 16,
    "num_train_epochs": 3,
    "logging_steps": 2,
    "warmup_steps": 0,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="module")
def bert(folder):
    return str(tiny_bert(folder / "tiny-bert"))


@pytest.fixture(scope="module")
def sqlite(folder):
    store = pr.connect(folder / "text.db")
    store.write("reviews", sentiment_rows(400), key="id")
    yield store
    store.close()


def _trainer(bert, **kw):
    args = {
        "model": bert,
        "text_column": "text",
        "label": "label",
        "training_args": ARGS,
        "max_length": 16,
        "scaling_config": ScalingConfig(num_workers=2),
        "name": "sentiment",
    }
    return pr.HuggingFaceTrainer(**(args | kw))


@pytest.fixture(scope="module")
def fitted(sqlite, bert):
    train = sqlite.table("reviews", where={"split": "train"})
    valid = sqlite.table("reviews", where={"split": "valid"})
    return _trainer(bert).fit(train=train, valid=valid)


def test_fit_learns_and_registers_a_version_when_given_string_labels(fitted, sqlite):
    assert fitted.version == 1
    assert fitted.metrics["valid/accuracy"] > 0.9
    version = sqlite.models.get("sentiment")
    assert version.framework == "huggingface"
    handles = set(version.handles)
    assert {"latest", "best", "epoch_0", "epoch_1", "epoch_2"} <= handles


def test_loss_goes_down_over_the_run(fitted, sqlite):
    first = sqlite.models.get("sentiment", handle="epoch_0").metrics["train/loss"]
    last = sqlite.models.get("sentiment", handle="latest").metrics["train/loss"]
    assert last < first


def test_loaded_model_predicts_labels_and_scores_from_raw_text(fitted, sqlite):
    model = sqlite.models.load("sentiment")
    labels = model.predict(["the product was great", "it was awful and broken"])
    assert list(labels) == ["pos", "neg"]
    scores = model.predict_scores(pd.DataFrame({"text": ["superb service", "useless"]}))
    assert list(scores["label"]) == ["pos", "neg"]
    assert (scores["score"] > 0.5).all()
    proba = model.predict_proba({"text": np.array(["lovely", "sad"])})
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(model.classes) == ["neg", "pos"]
