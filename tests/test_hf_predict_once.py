"""A loaded Hugging Face classifier runs its forward pass once when predict and then
predict_proba get the same rows, as pr.predict calls them; other rows run it again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import text_data

from pinnacle_ray.registry.huggingface_flavor import HuggingFaceModel


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification

    folder = text_data.tiny_bert(tmp_path_factory.mktemp("once") / "bert")
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    meta = {"task": "sequence-classification", "text_columns": ["text"], "labels": ["neg", "pos"]}
    return HuggingFaceModel(model, text_data.word_tokenizer(), meta)


def _counted(classifier, monkeypatch) -> list[int]:
    calls: list[int] = []
    forward = classifier.model.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(classifier.model, "forward", counting)
    return calls


def test_predict_then_predict_proba_on_the_same_rows_runs_the_model_once(classifier, monkeypatch):
    calls = _counted(classifier, monkeypatch)
    rows = pd.DataFrame({"text": ["great product", "awful service", "fine"]})
    labels = classifier.predict(rows)
    proba = classifier.predict_proba(rows)
    assert len(calls) == 1
    assert list(labels) == list(classifier.classes[proba.argmax(axis=1)])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_other_or_changed_rows_run_the_model_again(classifier, monkeypatch):
    calls = _counted(classifier, monkeypatch)
    rows = pd.DataFrame({"text": ["great product", "awful service"]})
    classifier.predict(rows)
    rows.loc[0, "text"] = "awful product"  # changed in place: not the same texts any more
    changed = classifier.predict_proba(rows)
    assert len(calls) == 2
    alone = classifier.predict_proba(["awful product"])
    assert len(calls) == 3
    np.testing.assert_allclose(changed[0], alone[0], rtol=1e-4)
