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


def test_pr_predict_actor_runs_the_model_once_per_batch_when_it_writes_labels_and_probabilities(
    tmp_path, monkeypatch
):
    """The actor pr.predict runs (BatchWriter) asks for labels and then probabilities of
    the same rows: one forward pass per batch, and both outputs written."""
    import json

    import pyarrow as pa

    import pinnacle_ray as pr
    from pinnacle_ray.batch_predict import BatchWriter, _Spec

    folder = text_data.tiny_bert(tmp_path / "bert")
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).save_pretrained(folder)
    meta = {
        "framework": "huggingface",
        "task": "sequence-classification",
        "text_columns": ["text"],
        "labels": ["neg", "pos"],
    }
    (folder / "pinnacle.json").write_text(json.dumps(meta))
    store = pr.connect(tmp_path / "shop.db")
    try:
        version = store.models.register("stars", "huggingface", folder).version
        files = store.models.files("stars", version)
        spec = _Spec(
            writer=store.bulk_writer("preds", key=["id", "model", "version"]),
            model="stars",
            version=version,
            files=files,
            allow_pickle=False,
            trusted_modules=(),
            features=["text"],
            key="id",
            passthrough=[],
            output="preds",
            created_at=pd.Timestamp.now(tz="UTC").to_pydatetime(),
        )
        writer = BatchWriter(spec)
        calls = _counted(writer.model, monkeypatch)
        texts = ["great product", "awful service", "fine"] * 10  # one chunk of the model's
        for start in (0, 30):
            batch = pa.table({"id": np.arange(start, start + 30), "text": texts})
            assert writer(batch).column("rows").to_pylist() == [30]
        assert len(calls) == 2  # two batches, one forward pass each
        spec.writer.commit()
        written = store.table("preds").to_arrow().to_pandas()
        assert len(written) == 60 and {"prediction", "proba_neg", "proba_pos"} <= set(written)
        np.testing.assert_allclose(written["proba_neg"] + written["proba_pos"], 1.0, rtol=1e-5)
    finally:
        store.close()
